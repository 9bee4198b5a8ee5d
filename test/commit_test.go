package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// TestCommitCrashPoints kills the source's podctl, kills the dock or cuts
// their connection at each step of a migration's commit (see
// pod/handover.go), with stop-and-copy and with --live. Whatever
// happened, once the dead side is back (the dock restarted, any podctl
// command run on the source), exactly one host runs the pod, and it has
// lost nothing: its counter goes on from where it was.
func TestCommitCrashPoints(t *testing.T) {
	harness.RequireRoot(t)
	lan := harness.NewLAN(t, podctlBin, 2)
	pki := lan.PKI(t)
	a, b := lan.Hosts[0], lan.Hosts[1]
	createCounter(t, a, "victim")

	cases := []struct {
		name               string
		sourceEnv, dockEnv []string
	}{
		// The source's podctl dies ...
		{name: "source killed once restored was read", sourceEnv: armed("migrate:restored-read")},
		{name: "source killed once handed over", sourceEnv: armed("migrate:handed-over")},
		{name: "source killed once the dock committed", sourceEnv: armed("migrate:committed")},
		// ... the dock dies ...
		{name: "dock killed once prepared", dockEnv: armed("dock:prepared")},
		{name: "dock killed once restored was sent", dockEnv: armed("dock:restored-sent")},
		{name: "dock killed while it commits", dockEnv: armed("decide:committed")},
		// ... or the connection dies.
		{name: "connection cut before restored is read", sourceEnv: armed("migrate:cut-at-restored")},
		{name: "connection cut before the commit", sourceEnv: armed("migrate:cut-at-commit")},
	}
	for _, mode := range []string{"stop-and-copy", "live"} {
		for _, tc := range cases {
			t.Run(mode+"/"+strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
				counted := consecutive(t, "victim's log", a.MustPodctl("logs", "victim"))
				argv := []string{"migrate", "victim", "--to", lan.DockAddr(1), "--pki", pki}
				if mode == "live" {
					argv = append(argv, "--live")
				}
				r, dock := faultyMigration(t, lan, pki, argv, tc.sourceEnv, tc.dockEnv)
				defer dock.Stop()
				if strings.Contains(tc.name, "source killed") && r.Code != -1 {
					t.Fatalf("the source was not killed at its failpoint: exit %d", r.Code)
				}
				on := survivor(t, "victim", a, b)
				harness.Eventually(t, 20*time.Second, func() error {
					if n := consecutive(t, "victim's log", on.MustPodctl("logs", "victim")); n < counted+5 {
						return fmt.Errorf("the pod counted to %d only (was at %d)", n, counted)
					}
					return nil
				})
				if on == b {
					back := lan.StartDock(t, 0, pki)
					b.MustPodctl("migrate", "victim", "--to", lan.DockAddr(0), "--pki", pki)
					back.Stop()
					if !runningOn(t, a, "victim") {
						t.Fatal("the pod did not come back")
					}
				}
				// Whatever the destination kept (a prepared pod whose
				// abort was lost) never runs, and the next migration
				// of the pod supersedes it; until then it is frozen.
				for _, p := range mustPods(t, b) {
					if p.Name == "victim" && p.Status != "prepared" {
						t.Fatalf("the destination keeps the pod as %s", p.Status)
					}
				}
			})
		}
	}
	// After all that, the pod migrates, and nothing is left on either side.
	lan.StartDock(t, 1, pki)
	a.MustPodctl("migrate", "victim", "--to", lan.DockAddr(1), "--pki", pki)
	if !runningOn(t, b, "victim") || podNames(t, a) != "" {
		t.Fatalf("after the faults: destination %s, source %s", podNames(t, b), podNames(t, a))
	}
}

// mustPods lists h's pods.
func mustPods(t testing.TB, h *harness.Host) []harness.PodInfo {
	t.Helper()
	ps, err := h.Pods()
	if err != nil {
		t.Fatal(err)
	}
	return ps
}
