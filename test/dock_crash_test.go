package test

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/internal/testseed"
	"github.com/podctl/podctl/test/harness"
	"golang.org/x/sys/unix"
)

// killDockScript is a CRIU action script that SIGKILLs the dock whose
// CRIU runs it when CRIU reaches the step $KILL_AT: the dock dies in the
// middle of a restore, leaving its CRIU running on as an orphan.
const killDockScript = `#!/bin/sh
[ "$CRTOOLS_SCRIPT_ACTION" = "$KILL_AT" ] || exit 0
criu=$PPID
case $(cat /proc/$criu/comm) in sh|dash) criu=$(cut -d' ' -f4 /proc/$criu/stat);; esac
kill -9 $(cut -d' ' -f4 /proc/$criu/stat)
`

// TestDockKilledDuringReceiveStartsAgain kills the destination dock at
// every step of a receive it can be stopped at (podctl's own steps, and
// CRIU's, where the dock's CRIU lives on as an orphan) and at random
// moments, with stop-and-copy and with --live. Each time, the migration
// fails and the source runs the pod on; a dock started again on the
// destination recovers what the dead one left, serves, and holds nothing
// of the pod; and the pod then migrates there.
func TestDockKilledDuringReceiveStartsAgain(t *testing.T) {
	harness.RequireRoot(t)
	lan := harness.NewLAN(t, podctlBin, 2)
	pki := lan.PKI(t)
	a, b := lan.Hosts[0], lan.Hosts[1]
	createCounter(t, a, "victim")
	makePodNetwork(t, b)
	script := filepath.Join(t.TempDir(), "kill-dock.sh")
	if err := os.WriteFile(script, []byte(killDockScript), 0o755); err != nil {
		t.Fatal(err)
	}
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewSource(seed))

	type kill struct {
		name  string
		env   []string      // the dock's
		after time.Duration // SIGKILL the dock this long after the migration starts
	}
	var kills []kill
	for _, fp := range []string{"dock:accepted", "dock:extracted", "restore:plumbed"} {
		kills = append(kills, kill{name: fp, env: []string{failpoint.EnvVar + "=" + fp}})
	}
	// CRIU's steps of a restore (its action scripts), in order.
	for _, step := range []string{"pre-restore", "setup-namespaces", "post-setup-namespaces", "post-restore"} {
		kills = append(kills, kill{name: "criu " + step, env: []string{failpoint.EnvVar + "=" + failpoint.CRIUScriptPrefix + script, "KILL_AT=" + step}})
	}
	for i := 0; i < 4; i++ {
		d := time.Duration(rng.Int63n(int64(600 * time.Millisecond)))
		kills = append(kills, kill{name: fmt.Sprintf("after %v", d.Round(time.Millisecond)), after: d})
	}

	for _, mode := range []string{"stop-and-copy", "live"} {
		for _, k := range kills {
			t.Run(mode+"/"+strings.ReplaceAll(k.name, " ", "-"), func(t *testing.T) {
				before, id := b.Snapshot(), a.Inspect("victim").ID
				counted := consecutive(t, "victim's log", a.MustPodctl("logs", "victim"))
				dock := lan.StartDockEnv(t, 1, pki, k.env...)
				argv := []string{"migrate", "victim", "--to", lan.DockAddr(1), "--pki", pki}
				if mode == "live" {
					argv = append(argv, "--live")
				}
				mig := harness.StartBackground(t, a.Command(a.PodctlArgv(argv...)...))
				if k.after > 0 {
					time.Sleep(k.after) // the random moment itself
					dock.Kill()
				}
				r := mig.Wait()
				// The failpoint's kill may be reaped after the source
				// has seen the dock go.
				harness.Eventually(t, 10*time.Second, func() error {
					if !dock.Exited() {
						return fmt.Errorf("the dock was not killed at %s (migrate: exit %d, %s)", k.name, r.Code, r.Stderr)
					}
					return nil
				})
				if r.Code == 0 {
					t.Logf("the dock died after the pod was restored and the source told: it runs there")
				}

				// The dock starts again: StartDock fails unless it gets
				// to "dock ready".
				again := lan.StartDock(t, 1, pki)
				defer again.Stop()
				onA, onB := runningOn(t, a, "victim"), runningOn(t, b, "victim")
				if onA == onB {
					t.Fatalf("after the kill the pod runs on the source: %v, on the destination: %v (want exactly one)", onA, onB)
				}
				if onB {
					// Moved (the dock died after telling the source):
					// bring it back through the restarted dock's host.
					back := lan.StartDock(t, 0, pki)
					b.MustPodctl("migrate", "victim", "--to", lan.DockAddr(0), "--pki", pki)
					back.Stop()
				}
				harness.Eventually(t, 20*time.Second, func() error {
					if n := consecutive(t, "victim's log", a.MustPodctl("logs", "victim")); n < counted+5 {
						return fmt.Errorf("the pod counted to %d only (was at %d)", n, counted)
					}
					if names := podNames(t, b); names != "" {
						return fmt.Errorf("the destination holds pods: %s", names)
					}
					// (the source's pod has a new ID if it went and came back)
					if d := before.WithoutPods(id).Diff(b.Snapshot().WithoutPods(a.Inspect("victim").ID)); d != "" {
						return fmt.Errorf("the destination changed: %s", d)
					}
					return nil
				})
			})
		}
	}

	// A leftover that cannot be removed (here a file made immutable in
	// the half-received pod's directory) is quarantined: the dock starts
	// and serves other pods, and a later recovery finishes it.
	t.Run("leftover-that-cannot-be-removed", func(t *testing.T) {
		dock := lan.StartDockEnv(t, 1, pki, failpoint.EnvVar+"=dock:extracted")
		if r := a.Podctl("migrate", "victim", "--to", lan.DockAddr(1), "--pki", pki); r.Code == 0 {
			t.Fatal("migrate succeeded with the dock killed")
		}
		dock.Kill()
		stuck := filepath.Join(b.Root, "pods", "victim", "stuck")
		setImmutable(t, stuck, true)
		defer setImmutable(t, stuck, false)
		again := lan.StartDock(t, 1, pki)
		defer again.Stop()
		if !strings.Contains(again.Stderr(), "cannot be cleaned up") || !strings.Contains(again.Stderr(), "victim") {
			t.Fatalf("the dock does not report the leftover; its log:\n%s", again.Stderr())
		}
		if r := b.Podctl("ps"); r.Code != 0 {
			t.Fatalf("ps fails with a leftover: %s", r.Stderr)
		}
		a.MustPodctl("create", "--name", "other", "--", "sleep", "1000")
		a.MustPodctl("migrate", "other", "--to", lan.DockAddr(1), "--pki", pki)
		if !runningOn(t, b, "other") || !runningOn(t, a, "victim") {
			t.Fatal("with a leftover quarantined, the dock does not serve, or the source lost its pod")
		}
		b.MustPodctl("rm", "-f", "other")
		setImmutable(t, stuck, false)
		b.MustPodctl("ps") // any command recovers
		if names := podNames(t, b); names != "" {
			t.Fatalf("the leftover stays once it can go: %s", names)
		}
	})

	// After all that, the pod migrates there, both ways.
	lan.StartDock(t, 1, pki)
	a.MustPodctl("migrate", "victim", "--to", lan.DockAddr(1), "--pki", pki)
	if !runningOn(t, b, "victim") {
		t.Fatalf("after the kills, the migrated pod does not run at the destination")
	}
}

// runningOn reports whether host h runs pod name.
func runningOn(t testing.TB, h *harness.Host, name string) bool {
	t.Helper()
	return statusOn(t, h, name) == "running"
}

// statusOn is pod name's status on host h ("" if h has no such pod).
func statusOn(t testing.TB, h *harness.Host, name string) string {
	t.Helper()
	for _, p := range mustPods(t, h) {
		if p.Name == name {
			return p.Status
		}
	}
	return ""
}

// setImmutable creates path if needed and sets or clears its immutable
// attribute (chattr +i): not even root can remove an immutable file.
func setImmutable(t testing.TB, path string, on bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o644)
	if errors.Is(err, os.ErrNotExist) && !on {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Fatalf("get attributes of %s: %v", path, err)
	}
	const immutable = 0x10 // FS_IMMUTABLE_FL, linux/fs.h
	if on {
		flags |= immutable
	} else {
		flags &^= immutable
	}
	v := int(flags)
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, v); err != nil {
		t.Fatalf("set attributes of %s: %v", path, err)
	}
}
