package test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// TestVesselMigrateFaultsLeaveSourceRunning injects failures into the
// portable migration of a vessel housed in a native pod and checks that
// the vessel runs on at the source (printing more, and finishing exactly
// like an uninterrupted run) and that the destination keeps nothing of
// the attempt: no pod, link, rule, mount, cgroup or directory.
func TestVesselMigrateFaultsLeaveSourceRunning(t *testing.T) {
	harness.RequireRoot(t)
	wl := wasmWorkloads(t)["recurse"]
	lan := harness.NewLAN(t, podctlBin, 2)
	pki := lan.PKI(t)
	a, b := lan.Hosts[0], lan.Hosts[1]
	makePodNetwork(t, b)
	cases := []struct {
		name    string
		noDock  bool
		dockEnv []string
		prepare func(t *testing.T, pod string) (undo func())
		want    string
	}{
		{name: "unreachable", noDock: true, want: "unreachable"},
		{name: "dock killed after decoding", dockEnv: []string{"PODCTL_FAILPOINT=dock:vessel-decoded"}},
		{name: "dock killed once the vessel started", dockEnv: []string{"PODCTL_FAILPOINT=housed:started"}},
		{name: "housing fails after start", dockEnv: []string{"PODCTL_FAILPOINT=housed:fail-after-start"}, want: "injected"},
		{name: "name in use at destination", want: "already exists", prepare: func(t *testing.T, pod string) func() {
			b.MustPodctl("create", "--name", pod, "--", "sleep", "1000")
			return func() { b.MustPodctl("rm", "-f", pod) }
		}},
	}
	for i, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			pod := fmt.Sprintf("f%d", i)
			if tc.prepare != nil {
				t.Cleanup(tc.prepare(t, pod))
			}
			before, podsBefore := b.Snapshot(), podNames(t, b)
			var dock *harness.Dock
			if !tc.noDock {
				dock = lan.StartDockEnv(t, 1, pki, tc.dockEnv...)
				t.Cleanup(dock.Stop)
			}
			createVessel(t, a, wl, pod, "PODCTL_WASM_ENGINE=interpreter")
			seen := waitNewLine(t, a, pod, 1, time.Minute)
			r := a.Podctl("migrate", pod, "--via", "wasm", "--to", lan.DockAddr(1), "--pki", pki, "--cert", "node")
			if r.Code == 0 || lines(r.Stderr) != 1 || !strings.Contains(r.Stderr, tc.want) {
				t.Fatalf("migrate: exit %d, stderr %q (want a failure, one line containing %q)", r.Code, r.Stderr, tc.want)
			}
			t.Logf("migrate failed as it should: %s", strings.TrimSpace(r.Stderr))

			// The vessel runs on at the source and finishes as if
			// nothing had happened.
			waitNewLine(t, a, pod, seen, time.Minute)
			checkLikeGolden(t, a, wl, pod, waitVesselExit(t, a, pod, 2*time.Minute))
			a.MustPodctl("rm", pod)

			// The destination keeps nothing. A killed dock leaves its
			// half-received pod to the next dock to start there.
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
				if _, err := os.Stat(vesselDir(b, pod)); err == nil && tc.prepare == nil {
					return fmt.Errorf("destination keeps a vessel directory")
				}
				return nil
			})
		})
	}
}
