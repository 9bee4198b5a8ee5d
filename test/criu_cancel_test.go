package test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/test/harness"
)

// holdRestoreScript is a CRIU action script that holds each restore at
// its start (pre-restore) until the test creates release.N, N counting
// the restores from 1, or until the CRIU that runs it is killed. It
// records the held CRIU's PID in held.N/criu.
const holdRestoreScript = `#!/bin/sh
[ "$CRTOOLS_SCRIPT_ACTION" = pre-restore ] || exit 0
dir=$(dirname "$0")
n=1
while ! mkdir "$dir/held.$n" 2>/dev/null; do n=$((n+1)); done
criu=$PPID
case $(cat /proc/$criu/comm) in sh|dash) criu=$(cut -d' ' -f4 /proc/$criu/stat);; esac
echo $criu > "$dir/held.$n/criu"
while [ ! -e "$dir/release.$n" ] && kill -0 $criu 2>/dev/null; do sleep 0.05; done
`

// TestCancelledCRIUSparesTheOthers cancels a migration while the dock's
// CRIU restores it, with a second migration's restore held at the same
// point on the same dock; with --live, each restore has its lazy-pages
// daemon beside it. The cancelled migration's CRIU and its helper must be
// killed (CRIU, as `make deps` installs it, runs under its own dynamic
// loader: a kill by name finds nothing), so that the dock gives the
// pod's name, address and staging back at once; the other migration's
// must be spared, and finish. (A stop-and-copy dump is never killed: its
// parasite runs in the pod's processes. See virtns.Runtime.Checkpoint.)
func TestCancelledCRIUSparesTheOthers(t *testing.T) {
	harness.RequireRoot(t)
	lan := harness.NewLAN(t, podctlBin, 2)
	pki := lan.PKI(t)
	a, b := lan.Hosts[0], lan.Hosts[1]
	for _, name := range []string{"first", "second"} {
		createCounter(t, a, name)
	}
	cases := []struct {
		name string
		live bool
		// helper is the dock's CRIU helper that runs meanwhile.
		helper string
	}{
		{name: "restore"},
		{name: "live-restore", live: true, helper: "lazy-pages"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			scripts := t.TempDir()
			script := filepath.Join(scripts, "hold.sh")
			if err := os.WriteFile(script, []byte(holdRestoreScript), 0o755); err != nil {
				t.Fatal(err)
			}
			dock := lan.StartDockEnv(t, 1, pki, failpoint.EnvVar+"="+failpoint.CRIUScriptPrefix+script)
			defer dock.Stop()
			defer func() {
				if t.Failed() {
					t.Logf("the dock's log:\n%s", dock.Stderr())
				}
			}()
			heldCRIU := func(n int) int {
				t.Helper()
				var pid int
				harness.Eventually(t, 60*time.Second, func() error {
					b, err := os.ReadFile(filepath.Join(scripts, fmt.Sprintf("held.%d", n), "criu"))
					if err != nil {
						return fmt.Errorf("CRIU run %d not held yet: %v (dock: %s)", n, err, dock.Stderr())
					}
					pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
					return err
				})
				return pid
			}
			release := func(n int) {
				t.Helper()
				if err := os.WriteFile(filepath.Join(scripts, fmt.Sprintf("release.%d", n)), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			alive := func(pid int) bool { return syscall.Kill(pid, 0) == nil }
			migrate := func(name string) *harness.Background {
				argv := []string{"migrate", name, "--to", lan.DockAddr(1), "--pki", pki}
				if tc.live {
					argv = append(argv, "--live")
				}
				return harness.StartBackground(t, a.Command(a.PodctlArgv(argv...)...))
			}
			first := migrate("first")
			firstCRIU := heldCRIU(1)
			second := migrate("second")
			secondCRIU := heldCRIU(2)
			if tc.helper != "" {
				harness.Eventually(t, 20*time.Second, func() error {
					if n := len(criuHelpers(b, tc.helper)); n != 2 {
						return fmt.Errorf("the dock runs %d %s helpers, want one per migration", n, tc.helper)
					}
					return nil
				})
			}

			// Ctrl-C the first migration while both CRIU runs are held.
			interruptMigration(t, first, a, "first")
			harness.Eventually(t, 20*time.Second, func() error {
				if alive(firstCRIU) {
					return fmt.Errorf("the cancelled migration's CRIU (pid %d) still runs", firstCRIU)
				}
				if names := podNames(t, b); strings.Contains(names, "first") {
					return fmt.Errorf("the dock still holds the cancelled pod: %s", names)
				}
				if tc.helper != "" && len(criuHelpers(b, tc.helper)) != 1 {
					return fmt.Errorf("the dock runs %s helpers %v, want the spared migration's only", tc.helper, criuHelpers(b, tc.helper))
				}
				return nil
			})
			if !alive(secondCRIU) {
				t.Fatalf("cancelling one migration killed the other's CRIU (pid %d)", secondCRIU)
			}

			// The other migration goes on once released, and the
			// cancelled pod can migrate again at once (to a dock that
			// holds nothing).
			release(2)
			if r := second.Wait(); r.Code != 0 {
				t.Fatalf("the spared migration failed: exit %d, %s\nthe dock's log:\n%s", r.Code, r.Stderr, dock.Stderr())
			}
			dock.Stop()
			lan.StartDock(t, 1, pki)
			a.MustPodctl("migrate", "first", "--to", lan.DockAddr(1), "--pki", pki)
			for _, name := range []string{"first", "second"} {
				if p := b.Inspect(name); p.Status != "running" {
					t.Fatalf("%s is %s at the destination", name, p.Status)
				}
			}
			// Back to the source for the next case.
			back := lan.StartDock(t, 0, pki)
			defer back.Stop()
			for _, name := range []string{"first", "second"} {
				b.MustPodctl("migrate", name, "--to", lan.DockAddr(0), "--pki", pki)
			}
		})
	}
}

// interruptMigration Ctrl-Cs mig, a migration of pod name from host a,
// and checks that it says so and that the pod runs on at the source.
func interruptMigration(t *testing.T, mig *harness.Background, a *harness.Host, name string) {
	t.Helper()
	r := mig.Interrupt(60 * time.Second)
	if r.Code != 130 || !strings.Contains(r.Stderr, "interrupted") {
		t.Fatalf("interrupted migrate: exit %d, stderr %q (want 130, interrupted)", r.Code, r.Stderr)
	}
	if p := a.Inspect(name); p.Status != "running" {
		t.Fatalf("the interrupted migration's pod is %s at the source", p.Status)
	}
}

// criuHelpers lists the PIDs of the CRIU helpers (`criu page-server`,
// `criu lazy-pages`) named helper that host h's podctl runs: their
// command lines name an images directory under h's state root.
func criuHelpers(h *harness.Host, helper string) []int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if !slices.Contains(args, helper) || !strings.Contains(string(b), h.Root+"/") {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestCancelledDumpSparesTheOthers interrupts a stop-and-copy migration
// while its CRIU dumps the pod's memory into the dock's page server, and
// a second migration dumps into the same dock. A dump is never killed
// (its parasite runs in the pod's processes: see virtns.Runtime.
// Checkpoint): it runs to its end, and the pod runs on at the source. The
// dock must let go of the interrupted migration (its page server and
// everything it reserved) and carry the other one through.
func TestCancelledDumpSparesTheOthers(t *testing.T) {
	harness.RequireRoot(t)
	lan := harness.NewLAN(t, podctlBin, 2)
	pki := lan.PKI(t)
	a, b := lan.Hosts[0], lan.Hosts[1]
	// Enough memory that both dumps still stream when the first is
	// interrupted.
	for _, name := range []string{"first", "second"} {
		a.MustPodctl("create", "--name", name, "--memory", "2g", "--", "python3", "-c", memoryHog(768))
		podFile(t, a, name, "/tmp/ready")
	}
	dock := lan.StartDock(t, 1, pki)
	defer dock.Stop()
	migrate := func(name string) *harness.Background {
		return harness.StartBackground(t, a.Command(a.PodctlArgv("migrate", name, "--to", lan.DockAddr(1), "--pki", pki)...))
	}
	first, second := migrate("first"), migrate("second")
	harness.Eventually(t, 60*time.Second, func() error {
		if n := len(criuHelpers(b, "page-server")); n != 2 {
			return fmt.Errorf("the dock runs %d page servers, want both migrations'", n)
		}
		return nil
	})

	interruptMigration(t, first, a, "first")
	if r := second.Wait(); r.Code != 0 {
		t.Fatalf("the spared migration failed: exit %d, %s\nthe dock's log:\n%s", r.Code, r.Stderr, dock.Stderr())
	}
	if !runningOn(t, b, "second") {
		t.Fatalf("the spared migration's pod does not run at the destination: %s", podNames(t, b))
	}
	harness.Eventually(t, 20*time.Second, func() error {
		if pids := criuHelpers(b, "page-server"); len(pids) != 0 {
			return fmt.Errorf("the dock still runs page servers %v", pids)
		}
		if names := podNames(t, b); strings.Contains(names, "first") {
			return fmt.Errorf("the dock still holds the interrupted pod: %s", names)
		}
		return nil
	})
	// The interrupted pod migrates at once.
	a.MustPodctl("migrate", "first", "--to", lan.DockAddr(1), "--pki", pki)
	if !runningOn(t, b, "first") {
		t.Fatalf("first does not run at the destination: %s", podNames(t, b))
	}
}
