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

	for _, mode := range []string{"stop-and-copy", "live"} {
		for _, tc := range commitCrashPoints {
			t.Run(mode+"/"+strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
				tc.check(t, lan, pki, "victim", func(to int) []string {
					argv := []string{"migrate", "victim", "--to", lan.DockAddr(to), "--pki", pki}
					if mode == "live" {
						argv = append(argv, "--live")
					}
					return argv
				})
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

// commitCrash is a crash point of the commit protocol: the failpoints
// armed in the source's podctl and in the dock.
type commitCrash struct {
	name               string
	sourceEnv, dockEnv []string
}

// commitCrashPoints are the crash points of the commit protocol, for a
// native pod and for a vessel alike (ARCHITECTURE.md, "The commit point").
var commitCrashPoints = []commitCrash{
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

// check migrates the counting pod name from the LAN's host 0 to host 1
// with migrate(1)'s arguments, crashing at c, and checks the rule:
// afterwards exactly one host runs the pod, which counts on, every
// number once; whatever the destination kept is prepared, never running.
// A pod left on host 1 migrates back, with migrate(0)'s arguments.
func (c commitCrash) check(t *testing.T, lan *harness.LAN, pki, name string, migrate func(to int) []string) {
	t.Helper()
	a, b := lan.Hosts[0], lan.Hosts[1]
	counted := consecutive(t, name+"'s log", a.MustPodctl("logs", name))
	r, dock := faultyMigration(t, lan, pki, migrate(1), c.sourceEnv, c.dockEnv)
	defer dock.Stop()
	if strings.Contains(c.name, "source killed") && r.Code != -1 {
		t.Fatalf("the source was not killed at its failpoint: exit %d", r.Code)
	}
	on := survivor(t, name, a, b)
	held := ""
	if on == a && statusOn(t, b, name) == "prepared" {
		held = b.MustPodctl("logs", name)
	}
	harness.Eventually(t, 20*time.Second, func() error {
		if n := consecutive(t, name+"'s log", on.MustPodctl("logs", name)); n < counted+5 {
			return fmt.Errorf("the pod counted to %d only (was at %d)", n, counted)
		}
		return nil
	})
	// A prepared copy is recorded so, and must be stopped too: it counted
	// nothing while the survivor counted on.
	if held != "" && b.MustPodctl("logs", name) != held {
		t.Fatalf("the copy prepared on the destination runs: its log grew from %d lines to %d", lines(held), lines(b.MustPodctl("logs", name)))
	}
	if on == b {
		back := lan.StartDock(t, 0, pki)
		b.MustPodctl(migrate(0)...)
		back.Stop()
		if !runningOn(t, a, name) {
			t.Fatal("the pod did not come back")
		}
	}
	// Whatever the destination kept (a prepared pod whose abort was
	// lost) never runs, and the next migration of the pod supersedes
	// it; until then it is frozen (a vessel: held).
	if podNames(t, b) != "" && statusOn(t, b, name) != "prepared" {
		t.Fatalf("the destination keeps %s", podNames(t, b))
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
