//go:build !linux

package doctor

import (
	"context"
	"os"
)

// Run reports what vessel pods need: native pods are built from Linux
// namespaces, cgroups and CRIU, which this platform has not.
func Run(ctx context.Context, opts Options) Report { return vesselsOnlyReport() }

// PrepareHWBreakpointChild does nothing outside Linux and returns false.
func PrepareHWBreakpointChild(args []string) bool { return false }

// HWBreakpointChild exits with status 2: the probe only runs on Linux.
func HWBreakpointChild() { os.Exit(2) }
