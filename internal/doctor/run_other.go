//go:build !linux

package doctor

import (
	"context"
	"os"
	"runtime"
)

// Run reports that podctl needs Linux: pods are built from Linux namespaces,
// cgroups and CRIU.
func Run(ctx context.Context, opts Options) Report {
	return Report{Checks: []Check{{
		Name:     "platform: linux",
		Required: true,
		Status:   StatusMissing,
		Detail:   "running on " + runtime.GOOS,
		Fix:      "run podctl on Linux",
	}}}
}

// PrepareHWBreakpointChild does nothing outside Linux and returns false.
func PrepareHWBreakpointChild(args []string) bool { return false }

// HWBreakpointChild exits with status 2: the probe only runs on Linux.
func HWBreakpointChild() { os.Exit(2) }
