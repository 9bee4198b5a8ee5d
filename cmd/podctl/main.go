// Command podctl creates pods, checkpoints and restores them, and migrates
// them between hosts. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/pod/vesselpod"
)

// Hidden entry points: podctl is also the supervisor of every vessel pod
// (see vesselpod.Supervise) and, in builds with native pods, libcontainer's
// `init`, a pod's PID 1 and the child of doctor's hardware-breakpoint
// probe (see nativeEntry). They are dispatched before anything else runs.
func init() {
	if len(os.Args) < 2 {
		return
	}
	if os.Args[1] == vesselpod.SupervisorArg {
		os.Exit(vesselpod.Supervise(os.Args[2:]))
	}
	nativeEntry(os.Args[1])
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) && !errdefs.Is(err, errdefs.Interrupted) {
		err = errdefs.New(errdefs.Interrupted, "interrupted: %w", err)
	}
	stop()
	if err != nil {
		os.Exit(report(err))
	}
}

// report prints err as one line and returns the exit status for its kind.
func report(err error) int {
	var exit *exitError
	if errors.As(err, &exit) {
		return exit.code
	}
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	fmt.Fprintln(os.Stderr, "podctl: "+msg)
	return int(errdefs.KindOf(err))
}

// exitError carries a status to exit with and nothing to print: a
// command's own exit status (exec) or a failed doctor check.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }
