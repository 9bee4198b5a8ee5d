package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// exitInterrupted is podctl's exit status for a command stopped by a
// Ctrl-C (errdefs.Interrupted).
const exitInterrupted = 130

// TestInterruptUndoes sends Ctrl-C to create, checkpoint and restore at
// the step where each has the most to undo (held there by a "hold:"
// failpoint) and checks that the command ends with one line and status
// 130, having undone what it started: a pod being created is gone, a pod
// being checkpointed runs on, a pod being restored is checkpointed still,
// and the host holds nothing more than before.
func TestInterruptUndoes(t *testing.T) {
	h := newHost(t)
	const counter = `i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done`
	// It publishes a port, so that the port leases exist before the
	// interrupted create (they stay, like the network).
	h.MustPodctl("create", "--name", "counter", "-p", "18103:80", "--", "sh", "-c", counter)
	waitLog(t, h, "counter", "3\n")

	// interrupt runs podctl args held at failpoint, Ctrl-Cs it there and
	// checks how it ended.
	interrupt := func(t *testing.T, failpoint string, args ...string) {
		t.Helper()
		cmd := h.Command(h.PodctlArgv(args...)...)
		cmd.Env = append(os.Environ(), "PODCTL_FAILPOINT=hold:"+failpoint)
		r := interruptAt(t, cmd, nil, "failpoint: holding at "+failpoint)
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
			if !strings.HasPrefix(l, "failpoint: ") {
				lines = append(lines, l)
			}
		}
		if r.Code != exitInterrupted || len(lines) != 1 || !strings.Contains(lines[0], "interrupted") {
			t.Fatalf("podctl %s interrupted at %s: exit %d, stderr %q; want %d and one line saying so", args[0], failpoint, r.Code, r.Stderr, exitInterrupted)
		}
		t.Logf("podctl %s: %s", args[0], lines[0])
	}
	// countsOn checks that the counter pod runs, counting on without a gap.
	countsOn := func(t *testing.T) {
		t.Helper()
		if p := h.Inspect("counter"); p.Status != "running" {
			t.Fatalf("counter is %s", p.Status)
		}
		counted := consecutive(t, "counter's log", h.MustPodctl("logs", "counter"))
		harness.Eventually(t, 20*time.Second, func() error {
			if n := consecutive(t, "counter's log", h.MustPodctl("logs", "counter")); n < counted+10 {
				return fmt.Errorf("counter counted to %d only (was at %d)", n, counted)
			}
			return nil
		})
	}
	// noArchive checks that no archive, whole or partial, was left in the
	// pod's directory.
	noArchive := func(t *testing.T) {
		t.Helper()
		ents, err := os.ReadDir(h.Inspect("counter").Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if strings.Contains(e.Name(), "checkpoint") {
				t.Fatalf("an interrupted checkpoint left %s", e.Name())
			}
		}
	}

	t.Run("create", func(t *testing.T) {
		before, podsBefore := h.Snapshot(), podNames(t, h)
		interrupt(t, "create:attached", "create", "--name", "victim", "-p", "18102:80", "--", "sleep", "1000")
		if got := podNames(t, h); got != podsBefore {
			t.Fatalf("pods after an interrupted create: %s, before: %s", got, podsBefore)
		}
		if d := before.Diff(h.Snapshot()); d != "" {
			t.Fatalf("an interrupted create left: %s", d)
		}
		if _, err := os.Stat(filepath.Join(h.Root, "pods", "victim")); err == nil {
			t.Fatal("an interrupted create left its pod's directory")
		}
		// The name, address and port are free again.
		h.MustPodctl("create", "--name", "victim", "-p", "18102:80", "--", "sleep", "1000")
		h.MustPodctl("rm", "-f", "victim")
	})
	// Frozen and cut from the network, before CRIU starts; and dumped,
	// while the archive is written.
	for _, fp := range []string{"checkpoint:frozen", "checkpoint:dumped"} {
		t.Run(strings.ReplaceAll(fp, ":", "-"), func(t *testing.T) {
			before := h.Snapshot()
			interrupt(t, fp, "checkpoint", "counter")
			countsOn(t)
			noArchive(t)
			if d := before.Diff(h.Snapshot()); d != "" {
				t.Fatalf("an interrupted checkpoint changed the host: %s", d)
			}
		})
	}
	t.Run("restore", func(t *testing.T) {
		h.MustPodctl("checkpoint", "counter")
		before := h.Snapshot()
		interrupt(t, "restore:plumbed", "restore", "counter")
		if p := h.Inspect("counter"); p.Status != "checkpointed" {
			t.Fatalf("after an interrupted restore the pod is %s, want checkpointed", p.Status)
		}
		if d := before.Diff(h.Snapshot()); d != "" {
			t.Fatalf("an interrupted restore left: %s", d)
		}
		// The archive is intact: the pod restores and counts on.
		h.MustPodctl("restore", "counter")
		countsOn(t)
	})
}

// interruptAt starts cmd and sends it SIGINT (Ctrl-C) once the output
// that holding returns (a dock's, or, if nil, its own standard error)
// contains marker, then waits for it to end.
func interruptAt(t *testing.T, cmd *exec.Cmd, holding func() string, marker string) harness.Result {
	t.Helper()
	bg := harness.StartBackground(t, cmd)
	if holding == nil {
		holding = bg.Stderr
	}
	bg.WaitFor(holding, marker)
	return bg.Interrupt(30 * time.Second)
}
