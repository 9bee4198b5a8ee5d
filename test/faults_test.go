package test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/test/harness"
)

// counterScript counts, a line every 50 ms: its log shows whether a pod
// lost or repeated time (see consecutive).
const counterScript = `i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done`

// armed is the environment that arms failpoint name.
func armed(name string) []string { return []string{failpoint.EnvVar + "=" + name} }

// createCounter creates a pod running counterScript on h and waits until
// it counts.
func createCounter(t testing.TB, h *harness.Host, name string) {
	t.Helper()
	h.MustPodctl("create", "--name", name, "--", "sh", "-c", counterScript)
	waitLog(t, h, name, "3\n")
}

// makePodNetwork makes h's pod network, which stays once made (when its
// last pod goes, like podman's): a test that checks that a failed
// migration leaves nothing on h makes it first, so that only the pod's
// own things count.
func makePodNetwork(t testing.TB, h *harness.Host) {
	t.Helper()
	h.MustPodctl("create", "--name", "warmup", "--", "true")
	h.MustPodctl("rm", "-f", "warmup")
}

// faultyMigration runs `podctl argv...` on host a (a migration to the
// dock of host 1) with sourceEnv, against a dock started with dockEnv. A
// dock that dies is started again at once, as an operator would, while
// the source may still try to reach it. It returns migrate's result and
// the dock that serves at the end (stopped when the test ends).
func faultyMigration(t *testing.T, lan *harness.LAN, pki string, argv, sourceEnv, dockEnv []string) (harness.Result, *harness.Dock) {
	t.Helper()
	a := lan.Hosts[0]
	dock := lan.StartDockEnv(t, 1, pki, dockEnv...)
	cmd := a.Command(a.PodctlArgv(argv...)...)
	cmd.Env = append(os.Environ(), sourceEnv...)
	mig := harness.StartBackground(t, cmd)
	serving := dock
	harness.Eventually(t, 90*time.Second, func() error {
		if serving.Exited() {
			serving = lan.StartDock(t, 1, pki)
		}
		if !mig.Exited() {
			return fmt.Errorf("migrate still runs")
		}
		return nil
	})
	if serving.Exited() {
		serving = lan.StartDock(t, 1, pki)
	}
	r := mig.Wait()
	t.Logf("migrate: exit %d: %s", r.Code, strings.TrimSpace(r.Stderr))
	if len(dockEnv) > 0 && serving == dock {
		t.Fatal("the dock was not killed at its failpoint")
	}
	return r, serving
}

// survivor waits until exactly one of src and dst runs pod name, after
// running a command on src (its recovery settles what a dead podctl
// left), and returns that host.
func survivor(t *testing.T, name string, src, dst *harness.Host) *harness.Host {
	t.Helper()
	var on *harness.Host
	harness.Eventually(t, 60*time.Second, func() error {
		src.MustPodctl("ps")
		onSrc, onDst := runningOn(t, src, name), runningOn(t, dst, name)
		if onSrc == onDst {
			return fmt.Errorf("the pod runs on the source: %v, on the destination: %v (want exactly one); source %s; destination %s", onSrc, onDst, podNames(t, src), podNames(t, dst))
		}
		on = src
		if onDst {
			on = dst
		}
		return nil
	})
	return on
}
