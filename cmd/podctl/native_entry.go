//go:build linux && cgo

package main

import (
	"io"
	"os"

	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter" // joins namespaces before the Go runtime starts, for `podctl init`
	"github.com/sirupsen/logrus"

	"github.com/podctl/podctl/internal/doctor"
	"github.com/podctl/podctl/virtns/podinit"
)

// nativeBuild says this build has native pods.
const nativeBuild = true

// nativeEntry runs the native layer's hidden entry point arg, if it is
// one: libcontainer's `init` (the first step of every process it starts
// in a pod), `_podinit` (a pod's PID 1 without podinit) and doctor's
// hardware-breakpoint probe child. It does not return from those.
func nativeEntry(arg string) {
	switch arg {
	case "init":
		libcontainer.Init() // never returns
	case "_podinit":
		os.Exit(podinit.Main(os.Args[2:]))
	case doctor.HWBreakpointChildArg:
		doctor.HWBreakpointChild()
	}
	// libcontainer logs CRIU's failures through logrus; podctl reports
	// them itself, in one line.
	logrus.SetOutput(io.Discard)
}
