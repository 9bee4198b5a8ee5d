package test

import (
	"fmt"
	"os"
	"path/filepath"
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

// TestCancelledRestoreSparesTheOthers cancels a migration while the
// dock's CRIU restores the pod, with a second migration's CRIU restoring
// on the same dock at the same moment. The cancelled restore's CRIU (the
// one `make deps` installs runs under its own dynamic loader) must be
// killed, so that the dock gives the pod's name, address and staging back
// at once; the other must be spared and finish.
func TestCancelledRestoreSparesTheOthers(t *testing.T) {
	harness.RequireRoot(t)
	lan := harness.NewLAN(t, podctlBin, 2)
	pki := lan.PKI(t)
	a, b := lan.Hosts[0], lan.Hosts[1]
	for _, name := range []string{"first", "second"} {
		createCounter(t, a, name)
	}
	scripts := t.TempDir()
	script := filepath.Join(scripts, "hold.sh")
	if err := os.WriteFile(script, []byte(holdRestoreScript), 0o755); err != nil {
		t.Fatal(err)
	}
	dock := lan.StartDockEnv(t, 1, pki, failpoint.EnvVar+"="+failpoint.CRIUScriptPrefix+script)
	t.Cleanup(dock.Stop)
	heldCRIU := func(n int) int {
		t.Helper()
		var pid int
		harness.Eventually(t, 60*time.Second, func() error {
			b, err := os.ReadFile(filepath.Join(scripts, fmt.Sprintf("held.%d", n), "criu"))
			if err != nil {
				return fmt.Errorf("restore %d not held yet: %v (dock: %s)", n, err, dock.Stderr())
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
		return harness.StartBackground(t, a.Command(a.PodctlArgv("migrate", name, "--to", lan.DockAddr(1), "--pki", pki)...))
	}
	first := migrate("first")
	firstCRIU := heldCRIU(1)
	second := migrate("second")
	secondCRIU := heldCRIU(2)

	// Ctrl-C the first migration while both restores are in CRIU.
	r := first.Interrupt(30 * time.Second)
	if r.Code != 130 || !strings.Contains(r.Stderr, "interrupted") {
		t.Fatalf("interrupted migrate: exit %d, stderr %q (want 130, interrupted)", r.Code, r.Stderr)
	}
	if p := a.Inspect("first"); p.Status != "running" {
		t.Fatalf("the interrupted migration's pod is %s at the source", p.Status)
	}
	harness.Eventually(t, 20*time.Second, func() error {
		if alive(firstCRIU) {
			return fmt.Errorf("the cancelled restore's CRIU (pid %d) still runs", firstCRIU)
		}
		if names := podNames(t, b); strings.Contains(names, "first") {
			return fmt.Errorf("the dock still holds the cancelled pod: %s", names)
		}
		return nil
	})
	if !alive(secondCRIU) {
		t.Fatalf("cancelling one restore killed the other's CRIU (pid %d)", secondCRIU)
	}

	// The other restore goes on once released, and the cancelled pod can
	// migrate again at once.
	release(2)
	if r := second.Wait(); r.Code != 0 {
		t.Fatalf("the spared migration failed: exit %d, %s\nthe dock's log:\n%s", r.Code, r.Stderr, dock.Stderr())
	}
	release(3)
	a.MustPodctl("migrate", "first", "--to", lan.DockAddr(1), "--pki", pki)
	for _, name := range []string{"first", "second"} {
		if p := b.Inspect(name); p.Status != "running" {
			t.Fatalf("%s is %s at the destination", name, p.Status)
		}
	}
}
