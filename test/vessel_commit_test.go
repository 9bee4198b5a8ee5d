package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	migrate := func(to int) []string {
		return []string{"migrate", "victim", "--via", "wasm", "--to", lan.DockAddr(to), "--pki", pki}
	}
	for _, tc := range commitCrashPoints {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			tc.check(t, lan, pki, "victim", migrate)
		})
	}
	// After all that, the vessel migrates, and nothing is left on either
	// side.
	lan.StartDock(t, 1, pki)
	a.MustPodctl(migrate(1)...)
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
