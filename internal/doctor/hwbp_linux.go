//go:build linux

package doctor

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hwbpCounter is the variable the hardware-breakpoint probe watches. Only the
// probe child (HWBreakpointChild) writes to it; the parent learns its address
// from the child's first line of output. It is the package's only mutable
// package-level variable, because the probe needs a fixed data address.
var hwbpCounter uint64

// hwbpChildLifetime bounds how long a probe child runs if its parent fails to
// kill it (the parent also sets PR_SET_PDEATHSIG).
const hwbpChildLifetime = 60 * time.Second

// hwbpTouch writes to *p. It is the target of the probe's execute breakpoint
// and the writer the probe's write watchpoint catches: it is not inlined, so
// the child's loop really calls it at its entry address, and it writes
// atomically, so the compiler can neither drop the write nor hoist it out of
// the loop.
//
//go:noinline
func hwbpTouch(p *uint64) {
	atomic.AddUint64(p, 1)
}

// PrepareHWBreakpointChild prepares the hidden `podctl _hwbp-child`
// subcommand. Call it from an init function of package main with os.Args:
// when args[1] is HWBreakpointChildArg it locks the main goroutine to the
// main OS thread (runtime.LockOSThread only does that when called during
// initialization), so that HWBreakpointChild later runs on the process's main
// thread, and it returns true. Otherwise it does nothing and returns false.
func PrepareHWBreakpointChild(args []string) bool {
	if len(args) < 2 || args[1] != HWBreakpointChildArg {
		return false
	}
	runtime.LockOSThread()
	return true
}

// HWBreakpointChild is the body of the hidden `podctl _hwbp-child` subcommand
// (HWBreakpointChildArg) that the hardware-breakpoint probe of Run starts. It
// locks the calling goroutine to its OS thread, prints one line
//
//	podctl-hwbp-child addr=0x5a1c40 func=0x4a3b20 tid=1234
//
// giving the address of the watched variable, the entry address of the
// function that writes it and the id of the thread that calls that function,
// and then calls the function in a loop until it is killed.
// It never returns: after a minute it exits on its own, in case its parent
// could not kill it.
//
// The probe attaches to the thread the child reports, so HWBreakpointChild
// works from any goroutine. Called from an init function of package main, or
// from main after PrepareHWBreakpointChild ran in an init function, it runs
// on the process's main thread (thread id = process id).
func HWBreakpointChild() {
	runtime.LockOSThread()
	fmt.Fprintf(os.Stdout, "%s addr=%#x func=%#x tid=%d\n", hwbpChildBanner,
		uintptr(unsafe.Pointer(&hwbpCounter)), reflect.ValueOf(hwbpTouch).Pointer(), unix.Gettid())
	deadline := time.Now().Add(hwbpChildLifetime)
	for i := uint64(1); ; i++ {
		hwbpTouch(&hwbpCounter)
		if i%(1<<22) == 0 && time.Now().After(deadline) {
			os.Exit(0)
		}
	}
}
