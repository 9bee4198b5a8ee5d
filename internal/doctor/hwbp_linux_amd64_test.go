//go:build linux && amd64

package doctor

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestHWBreakpointProbe runs each kind of breakpoint against this test
// binary as its own probe child (see TestMain), whose init locked the probe
// loop to the main thread.
func TestHWBreakpointProbe(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range hwbpKinds() {
		res, err := probeHWBreakpoint(context.Background(), self, kind, time.Second)
		if err != nil {
			t.Fatalf("%s: %v", kind.name, err)
		}
		t.Logf("%s: %+v", kind.name, res)
		// init locked the child's main goroutine to the main thread.
		if res.tid != res.pid {
			t.Errorf("%s: traced thread %d is not the child's main thread %d", kind.name, res.tid, res.pid)
		}
		if res.fired == (res.hits > 0) {
			t.Errorf("%s: fired=%v with %d hits: want a trap or hits without one", kind.name, res.fired, res.hits)
		}
	}

	if kids := childProcesses(t); len(kids) > 0 {
		t.Errorf("child processes left behind: %v", kids)
	}
}

// TestHWBreakpointProbeOffMainThread traces a thread that is not the
// child's main thread: the probe must find it and reap both.
func TestHWBreakpointProbeOffMainThread(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(hwbpChildEnv, hwbpChildOffMain)
	for _, kind := range hwbpKinds() {
		res, err := probeHWBreakpoint(context.Background(), self, kind, 200*time.Millisecond)
		if err != nil {
			t.Fatalf("%s: %v", kind.name, err)
		}
		t.Logf("%s: %+v", kind.name, res)
		if res.tid == res.pid {
			t.Errorf("%s: traced the main thread, want another one", kind.name)
		}
		if res.fired == (res.hits > 0) {
			t.Errorf("%s: fired=%v with %d hits", kind.name, res.fired, res.hits)
		}
	}
	if kids := childProcesses(t); len(kids) > 0 {
		t.Errorf("child processes left behind: %v", kids)
	}
}

// TestHWBreakpointProbeNoTrap exercises the "do not fire" path with a
// breakpoint whose DR7 enable bit is clear, so it cannot trap anywhere.
func TestHWBreakpointProbeNoTrap(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	disabled := hwbpKind{name: "disabled write watchpoint", dr7: dr7RW0Write | dr7Len0Eight}
	r := newRunner(Options{SelfExe: self})
	r.hwbpWait = 200 * time.Millisecond
	c := r.hwbpCheck(context.Background(), "hardware breakpoints", []hwbpKind{hwbpKinds()[0], disabled})
	t.Logf("%+v", c)
	want := "do not fire (CRIU >= 4.2 copes; CRIU 4.1 needs CRIU_FAULT=130): "
	if c.Status != StatusInfo || !strings.HasPrefix(c.Detail, want) || !strings.Contains(c.Detail, "disabled write watchpoint: no trap in 200ms (") {
		t.Errorf("check = %+v, want info %q...", c, want)
	}
	if kids := childProcesses(t); len(kids) > 0 {
		t.Errorf("child processes left behind: %v", kids)
	}
}

// TestHWBreakpointProbeBadChild checks that a child that never prints its
// address line makes the probe fail (warn), and is killed and reaped.
func TestHWBreakpointProbeBadChild(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]string{
		"silent":  "exec sleep 60\n",
		"garbage": "echo podctl-hwbp-child addr=0x3 tid=1; exec sleep 60\n",
		"exits":   "echo oops >&2; exit 3\n",
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			exe := writeScript(t, dir, name, body)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			start := time.Now()
			_, err := probeHWBreakpoint(ctx, exe, hwbpKinds()[1], 100*time.Millisecond)
			if err == nil {
				t.Fatal("probe succeeded with a bad child")
			}
			t.Logf("err = %v (after %v)", err, time.Since(start))
			if time.Since(start) > 10*time.Second {
				t.Errorf("probe took %v", time.Since(start))
			}
			if kids := childProcesses(t); len(kids) > 0 {
				t.Errorf("child processes left behind: %v", kids)
			}
		})
	}
	r := newRunner(Options{})
	if c := r.checkHWBreakpoints(context.Background()); len(c) != 1 || c[0].Status != StatusWarn {
		t.Errorf("without SelfExe: %+v, want warn", c)
	}
}
