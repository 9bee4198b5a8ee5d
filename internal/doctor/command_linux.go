//go:build linux

package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxCommandOutput caps how much of an external command's output is kept.
const maxCommandOutput = 1 << 20

// runCommand runs path with args and returns its combined stdout and stderr.
// The command runs in its own process group with no standard input; when
// timeout expires or ctx is done the whole group is killed with SIGKILL.
func runCommand(ctx context.Context, timeout time.Duration, path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var out cappedBuffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Kill the process group: criu forks helpers of its own.
		if err := unix.Kill(-cmd.Process.Pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			return err
		}
		return nil
	}
	// Do not wait forever for output pipes a surviving grandchild holds.
	cmd.WaitDelay = 2 * time.Second

	err := cmd.Run()
	cmdline := strings.Join(append([]string{path}, args...), " ")
	switch {
	case err == nil:
		return out.String(), nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return out.String(), fmt.Errorf("%s: killed after %v: %w", cmdline, timeout, ctx.Err())
	case ctx.Err() != nil:
		return out.String(), fmt.Errorf("%s: %w", cmdline, ctx.Err())
	default:
		return out.String(), fmt.Errorf("%s: %w", cmdline, err)
	}
}

// outputSuffix formats the last line of a command's output for appending to
// an error message, or returns "" when there is no output.
func outputSuffix(out string) string {
	if line := lastLine(out); line != "" {
		return ": " + line
	}
	return ""
}

// lastLine returns the last non-blank line of s, trimmed.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// cappedBuffer is an io.Writer that keeps the first maxCommandOutput bytes
// written to it and discards the rest. os/exec serializes writes to it when it
// is both Stdout and Stderr.
type cappedBuffer struct {
	buf bytes.Buffer
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := maxCommandOutput - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *cappedBuffer) String() string { return b.buf.String() }
