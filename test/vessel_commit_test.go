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

// TestVesselCommitCrashPoints is TestCommitCrashPoints for a vessel that
// migrates as a portable snapshot: the same protocol, the same crash
// points (the source podctl killed, the dock killed, the connection
// cut), and the same rule: afterwards exactly one host runs the vessel,
// which counts on from where it was, every number once.
func TestVesselCommitCrashPoints(t *testing.T) {
	harness.RequireRoot(t)
	module := buildVesselCounter(t)
	lan := harness.NewLAN(t, podctlBin, 2)
	pki := lan.PKI(t)
	a, b := lan.Hosts[0], lan.Hosts[1]
	a.MustPodctl("create", "--name", "victim", "--wasm", module)
	waitLog(t, a, "victim", "3\n")
	migrate := func(h *harness.Host, to int) []string {
		return []string{"migrate", "victim", "--via", "wasm", "--to", lan.DockAddr(to), "--pki", pki}
	}

	cases := []struct {
		name               string
		sourceEnv, dockEnv []string
	}{
		// The source's podctl dies ...
		{name: "source killed once restored was read", sourceEnv: armed("migrate:vessel-restored")},
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
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			counted := consecutive(t, "victim's log", a.MustPodctl("logs", "victim"))
			r, dock := faultyMigration(t, lan, pki, migrate(a, 1), tc.sourceEnv, tc.dockEnv)
			defer dock.Stop()
			if strings.Contains(tc.name, "source killed") && r.Code != -1 {
				t.Fatalf("the source was not killed at its failpoint: exit %d", r.Code)
			}
			on := survivor(t, "victim", a, b)
			harness.Eventually(t, 20*time.Second, func() error {
				if n := consecutive(t, "victim's log", on.MustPodctl("logs", "victim")); n < counted+5 {
					return fmt.Errorf("the vessel counted to %d only (was at %d)", n, counted)
				}
				return nil
			})
			if on == b {
				back := lan.StartDock(t, 0, pki)
				b.MustPodctl(migrate(b, 0)...)
				back.Stop()
				if !runningOn(t, a, "victim") {
					t.Fatal("the vessel did not come back")
				}
			}
			// Whatever the destination kept (a vessel prepared, whose
			// abort was lost) never runs, and the next migration of the
			// vessel supersedes it.
			for _, p := range mustPods(t, b) {
				if p.Name == "victim" && p.Status != "prepared" {
					t.Fatalf("the destination keeps the vessel as %s", p.Status)
				}
			}
		})
	}
	// After all that, the vessel migrates, and nothing is left on either
	// side.
	lan.StartDock(t, 1, pki)
	a.MustPodctl(migrate(a, 1)...)
	if !runningOn(t, b, "victim") || podNames(t, a) != "" {
		t.Fatalf("after the faults: destination %s, source %s", podNames(t, b), podNames(t, a))
	}
	consecutive(t, "victim's log", b.MustPodctl("logs", "victim"))
}

// buildVesselCounter builds vesselCounterSource for wasm32-wasi.
func buildVesselCounter(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src, module := filepath.Join(dir, "counter.c"), filepath.Join(dir, "counter.wasm")
	if err := os.WriteFile(src, []byte(vesselCounterSource), 0o644); err != nil {
		t.Fatal(err)
	}
	harness.SkipOrFail(t, harness.BuildWasmC(module, "-O2", src))
	return module
}

// vesselCounterSource is a WASI program that prints 1, 2, 3... one number
// every 50 ms, for ever: a lost or repeated stretch of its run shows in
// its output.
const vesselCounterSource = `#include <stdio.h>
#include <time.h>
int main(void) {
	struct timespec pause = {0, 50 * 1000 * 1000};
	for (unsigned long n = 1;; n++) {
		printf("%lu\n", n);
		fflush(stdout);
		nanosleep(&pause, 0);
	}
}
`
