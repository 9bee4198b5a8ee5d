// Command podctl creates pods, checkpoints and restores them, and migrates
// them between hosts. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter" // joins namespaces before the Go runtime starts, for `podctl init`
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/internal/doctor"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/virtns/podinit"
)

// Hidden entry points: podctl is also libcontainer's `init` (the first
// step of every process it starts in a pod), the pod's PID 1, and the
// child of doctor's hardware-breakpoint probe. They are dispatched before
// anything else runs.
func init() {
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case "init":
		libcontainer.Init() // never returns
	case "_podinit":
		os.Exit(podinit.Main(os.Args[2:]))
	case doctor.HWBreakpointChildArg:
		doctor.HWBreakpointChild()
	}
}

func main() {
	// libcontainer logs CRIU's failures through logrus; podctl reports
	// them itself, in one line.
	logrus.SetOutput(io.Discard)
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
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
