package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Background is a command running while the test goes on.
type Background struct {
	tb       testing.TB
	cmd      *exec.Cmd
	out, err SyncBuffer
	done     chan error
	result   *Result
}

// StartBackground starts cmd, collecting its output. The test's cleanup
// kills it if it still runs.
func StartBackground(tb testing.TB, cmd *exec.Cmd) *Background {
	tb.Helper()
	b := &Background{tb: tb, cmd: cmd, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = &b.out, &b.err
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %v: %v", cmd.Args, err)
	}
	go func() { b.done <- cmd.Wait() }()
	tb.Cleanup(func() {
		if b.result == nil {
			cmd.Process.Kill()
			b.Wait()
		}
	})
	return b
}

// Stderr is what the command has written to its standard error so far.
func (b *Background) Stderr() string { return b.err.String() }

// Exited reports whether the command has ended, without waiting.
func (b *Background) Exited() bool {
	if b.result != nil {
		return true
	}
	select {
	case err := <-b.done:
		b.done <- err
		return true
	default:
		return false
	}
}

// Wait waits for the command to end and returns its output and status.
func (b *Background) Wait() Result {
	if b.result != nil {
		return *b.result
	}
	err := <-b.done
	r := Result{Stdout: b.out.String(), Stderr: b.err.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		r.Code = -1
		r.Stderr += err.Error()
	}
	b.result = &r
	return r
}

// Interrupt sends the command SIGINT (Ctrl-C) and waits for it to end;
// the test fails if it runs on for longer than timeout.
func (b *Background) Interrupt(timeout time.Duration) Result {
	b.tb.Helper()
	b.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-b.done:
		b.done <- err
		return b.Wait()
	case <-time.After(timeout):
		b.cmd.Process.Kill()
		r := b.Wait()
		b.tb.Fatalf("%v went on for %s after Ctrl-C; stderr %q", b.cmd.Args, timeout, r.Stderr)
		return r
	}
}

// WaitFor polls until the output that watch returns (the command's own
// standard error, or a dock's) contains marker; the test fails if the
// command ends first.
func (b *Background) WaitFor(watch func() string, marker string) {
	b.tb.Helper()
	Eventually(b.tb, 60*time.Second, func() error {
		if strings.Contains(watch(), marker) {
			return nil
		}
		if b.Exited() {
			b.tb.Fatalf("%v ended before %q: %s", b.cmd.Args, marker, b.Wait().Stderr)
		}
		return fmt.Errorf("no %q yet", marker)
	})
}
