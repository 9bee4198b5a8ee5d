package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// TestLiveFaults breaks a --live migration during post-copy, while the
// pod runs at the dock with most of its memory still at the source: the
// tunnel cut, the source's podctl killed, the dock killed. The pod at the
// dock cannot run without its memory (its missing pages would read as
// zeros), so it must be stopped and removed there, and the source's
// frozen copy must run again. Afterwards exactly one host runs the pod,
// and its 256 MiB of checksummed memory, its pipes, sockets, children and
// appended file are intact.
func TestLiveFaults(t *testing.T) {
	harness.RequireRoot(t)
	lan := harness.NewLAN(t, podctlBin, 2)
	pki := lan.PKI(t)
	a, b := lan.Hosts[0], lan.Hosts[1]
	a.MustPodctl("create", "--name", "keeper", "--memory", "1g", "--", "python3", "-c", workload(t, "keeper.py"), "256")
	podFile(t, a, "keeper", "/tmp/ready")
	cases := []struct {
		name               string
		sourceEnv, dockEnv []string
	}{
		{name: "tunnel cut", sourceEnv: armed("migrate:cut-in-post-copy")},
		{name: "source killed", sourceEnv: armed("migrate:post-copy")},
		{name: "dock killed", dockEnv: armed("decide:released")},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			appended := consecutive(t, "append.log", a.MustPodctl("exec", "keeper", "--", "cat", "/tmp/append.log"))
			r, dock := faultyMigration(t, lan, pki, []string{"migrate", "keeper", "--to", lan.DockAddr(1), "--pki", pki, "--live"}, tc.sourceEnv, tc.dockEnv)
			defer dock.Stop()
			if r.Code == 0 {
				t.Fatal("the migration succeeded: the fault missed post-copy")
			}
			on := survivor(t, "keeper", a, b)
			if on != a {
				t.Fatalf("the pod runs at the dock, which could not have all its memory")
			}
			on.MustPodctl("exec", "keeper", "--", "rm", "-f", "/tmp/result")
			on.MustPodctl("exec", "keeper", "--", "touch", "/tmp/check")
			if got := strings.TrimSpace(podFile(t, on, "keeper", "/tmp/result")); got != "pipe-payload sock-payload kids-alive mem-ok" {
				t.Fatalf("the pod's state after the fault: %q", got)
			}
			harness.Eventually(t, 20*time.Second, func() error {
				if n := consecutive(t, "append.log", on.MustPodctl("exec", "keeper", "--", "cat", "/tmp/append.log")); n <= appended {
					return fmt.Errorf("append.log at %d, was %d", n, appended)
				}
				return nil
			})
			if names := podNames(t, b); names != "" {
				t.Fatalf("the dock keeps %s", names)
			}
		})
	}
}
