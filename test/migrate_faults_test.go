package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// TestMigrateFaultsLeaveSourceRunning injects a failure at each step of a
// migration and checks that the source pod runs on, counting without a
// gap, and that the destination keeps nothing of the attempt.
func TestMigrateFaultsLeaveSourceRunning(t *testing.T) {
	harness.RequireRoot(t)
	lan := harness.NewLAN(t, podctlBin, 2)
	pki := lan.PKI(t)
	a, b := lan.Hosts[0], lan.Hosts[1]
	createCounter(t, a, "victim")
	makePodNetwork(t, b)
	// Forget the allocator's round-robin hint, so that a pod created on
	// the destination takes the first address: the victim's.
	os.Remove(filepath.Join(b.Root, "leases", "ip-default", ".next"))
	ip := a.Inspect("victim").Endpoint.IP
	// The host end of the victim's veth on any host: a link of that name
	// makes the destination's restore fail.
	var octets [4]int
	fmt.Sscanf(ip, "%d.%d.%d.%d", &octets[0], &octets[1], &octets[2], &octets[3])
	hostVeth := fmt.Sprintf("pv%02x%02x%02x%02x", octets[0], octets[1], octets[2], octets[3])
	dockTo := lan.DockAddr(1)

	cases := []struct {
		name      string
		to        string   // default: the dock on host 1
		noDock    bool     // no dock runs at all
		dockEnv   []string // the dock's environment (failpoints)
		sourceEnv []string // the migrating podctl's environment
		sourcePKI string   // the migrating podctl's --pki (default: the docks')
		interrupt string   // Ctrl-C the migration once the dock pauses at this failpoint
		prepare   func(t *testing.T) (undo func())
		want      string // in the one-line error
	}{
		{name: "unreachable", noDock: true, want: "unreachable"},
		{name: "certificate of another CA", sourcePKI: lan.PKI(t), want: "certificate"},
		{name: "wrong port", to: lan.HostAddr(1) + ":7999", want: "unreachable"},
		{name: "dock killed after accepting", dockEnv: []string{"PODCTL_FAILPOINT=dock:accepted"}},
		{name: "dock killed before restoring", dockEnv: []string{"PODCTL_FAILPOINT=dock:extracted"}},
		{name: "stream cut", sourceEnv: []string{"PODCTL_FAILPOINT=migrate:cut-after-dump"}},
		{name: "corrupt archive", sourceEnv: []string{"PODCTL_FAILPOINT=migrate:corrupt-archive"}, want: "archive"},
		{name: "truncated archive", sourceEnv: []string{"PODCTL_FAILPOINT=migrate:truncate-archive"}, want: "archive"},
		{name: "corrupt pages", sourceEnv: []string{"PODCTL_FAILPOINT=migrate:corrupt-pages"}, want: "page stream damaged"},
		{name: "destination disk full", want: "space", prepare: func(t *testing.T) func() {
			dir := filepath.Join(b.Root, "tmp")
			os.MkdirAll(dir, 0o700)
			if r := b.Run("mount", "-t", "tmpfs", "-o", "size=256k", "podctl-test-full", dir); r.Code != 0 {
				t.Fatalf("mount small tmpfs: %s", r.Stderr)
			}
			return func() { b.Run("umount", dir) }
		}},
		{name: "name in use at destination", want: "already exists", prepare: func(t *testing.T) func() {
			// Another network, so that only the name clashes.
			b.MustPodctl("create", "--name", "victim", "--network", "other", "--", "sleep", "1000")
			return func() { b.MustPodctl("rm", "-f", "victim") }
		}},
		{name: "address taken at destination", want: "already taken", prepare: func(t *testing.T) func() {
			b.MustPodctl("create", "--name", "squatter", "--", "sleep", "1000")
			if got := b.Inspect("squatter").Endpoint.IP; got != ip {
				t.Fatalf("squatter got %s, want the victim's %s", got, ip)
			}
			return func() { b.MustPodctl("rm", "-f", "squatter") }
		}},
		{name: "restore fails after CRIU", dockEnv: []string{"PODCTL_FAILPOINT=restore:fail-after-criu"}, want: "injected"},
		// Ctrl-C once the pod is dumped, sent and frozen here, while the
		// dock has not restored it: the pod thaws and runs on here.
		{name: "interrupted while the dock restores", dockEnv: []string{"PODCTL_FAILPOINT=pause:dock:extracted"}, interrupt: "dock:extracted", want: "interrupted"},
		{name: "interface name taken", want: "already exists", prepare: func(t *testing.T) func() {
			if r := b.Run("ip", "link", "add", hostVeth, "type", "bridge"); r.Code != 0 {
				t.Fatalf("add %s: %s", hostVeth, r.Stderr)
			}
			return func() { b.Run("ip", "link", "del", hostVeth) }
		}},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			if tc.prepare != nil {
				t.Cleanup(tc.prepare(t))
			}
			before, podsBefore := b.Snapshot(), podNames(t, b)
			var dock *harness.Dock
			if !tc.noDock {
				dock = lan.StartDockEnv(t, 1, pki, tc.dockEnv...)
				t.Cleanup(dock.Stop)
			}
			to := tc.to
			if to == "" {
				to = dockTo
			}
			counted := consecutive(t, "victim's log", a.MustPodctl("logs", "victim"))
			srcPKI := pki
			if tc.sourcePKI != "" {
				srcPKI = tc.sourcePKI
			}
			cmd := a.Command(a.PodctlArgv("migrate", "victim", "--to", to, "--pki", srcPKI)...)
			cmd.Env = append(os.Environ(), tc.sourceEnv...)
			var r harness.Result
			if tc.interrupt != "" {
				if r = interruptAt(t, cmd, dock.Stderr, "failpoint: paused at "+tc.interrupt); r.Code <= 0 {
					t.Fatalf("migrate ended by a signal or with success (%d) after Ctrl-C; stderr %q", r.Code, r.Stderr)
				}
				// The paused dock holds a half-received pod: as after a
				// crash, the next dock to start there takes it back.
				dock.Kill()
			} else {
				r = a.RunCmd(cmd)
			}
			lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
			if r.Code == 0 || len(lines) != 1 || !strings.Contains(r.Stderr, tc.want) {
				t.Fatalf("migrate: exit %d, stderr %q (want a failure, one line containing %q)", r.Code, r.Stderr, tc.want)
			}
			t.Logf("migrate failed as it should: %s", strings.TrimSpace(r.Stderr))

			// The source pod runs on and keeps counting from where it was.
			if p := a.Inspect("victim"); p.Status != "running" {
				t.Fatalf("source pod is %s after the failure", p.Status)
			}
			harness.Eventually(t, 20*time.Second, func() error {
				if n := consecutive(t, "victim's log", a.MustPodctl("logs", "victim")); n < counted+10 {
					return fmt.Errorf("source pod counted to %d only (was at %d)", n, counted)
				}
				return nil
			})

			// The destination keeps nothing. A dock that was killed leaves
			// its half-received pod to the next dock to start there.
			if dock != nil && dock.Exited() {
				lan.StartDock(t, 1, pki).Stop()
			}
			harness.Eventually(t, 20*time.Second, func() error {
				if got := podNames(t, b); got != podsBefore {
					return fmt.Errorf("destination pods: %s, before: %s", got, podsBefore)
				}
				if d := before.Diff(b.Snapshot()); d != "" {
					return fmt.Errorf("destination changed: %s", d)
				}
				if ents, _ := os.ReadDir(filepath.Join(b.Root, "tmp")); len(ents) != 0 {
					return fmt.Errorf("destination scratch left: %v", ents)
				}
				return nil
			})
		})
	}
	// After all that, a clean migration still works.
	lan.StartDock(t, 1, pki)
	a.MustPodctl("migrate", "victim", "--to", dockTo, "--pki", pki)
	if p := b.Inspect("victim"); p.Status != "running" {
		t.Fatalf("after the faults, migrated pod is %s", p.Status)
	}
}

// podNames lists a host's pods with their status and address.
func podNames(t testing.TB, h *harness.Host) string {
	t.Helper()
	ps, err := h.Pods()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, p.Spec.Name+"/"+p.Status+"/"+p.Endpoint.IP)
	}
	return strings.Join(out, " ")
}
