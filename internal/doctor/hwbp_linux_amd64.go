//go:build linux && amd64

package doctor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// x86-64 debug registers as ptrace's PTRACE_PEEKUSER and PTRACE_POKEUSER see
// them: u_debugreg[8] of struct user (<sys/user.h>) starts at byte 848.
const (
	userDebugRegs = 848
	dr0Offset     = userDebugRegs + 0*8
	dr6Offset     = userDebugRegs + 6*8
	dr7Offset     = userDebugRegs + 7*8

	// DR7 fields for breakpoint 0.
	dr7L0        = 1 << 0  // L0: enable breakpoint 0 for this thread
	dr7RW0Exec   = 0 << 16 // RW0 = 00: break on instruction execution
	dr7RW0Write  = 1 << 16 // RW0 = 01: break on data writes
	dr7Len0One   = 0 << 18 // LEN0 = 00: 1 byte (required for execution)
	dr7Len0Eight = 2 << 18 // LEN0 = 10: 8 bytes (01 = 2, 11 = 4 bytes)

	// dr6B0 is set in DR6 when breakpoint 0 triggered.
	dr6B0 = 1 << 0
)

// hwbpKind is a kind of hardware breakpoint the probe tries.
type hwbpKind struct {
	name string
	dr7  uint64
	// exec selects the child's function entry as the address (an execute
	// breakpoint, which is what CRIU's compel sets to catch its parasite);
	// otherwise the child's counter is watched for writes.
	exec bool
}

// hwbpKinds returns the breakpoints the probe tries: both must trap for
// hardware breakpoints to count as working.
func hwbpKinds() []hwbpKind {
	return []hwbpKind{
		{name: "execute breakpoint", dr7: dr7L0 | dr7RW0Exec | dr7Len0One, exec: true},   // 0x1
		{name: "write watchpoint", dr7: dr7L0 | dr7RW0Write | dr7Len0Eight, exec: false}, // 0x90001
	}
}

// hwbpBannerTimeout bounds how long the probe waits for the child's line and
// for each ptrace stop it requests.
const hwbpBannerTimeout = 10 * time.Second

// checkHWBreakpoints reports whether hardware breakpoints fire on this host
// (in some VMs they do not). CRIU 4.1 and older hang in every dump when they
// do not, unless CRIU_FAULT=130 is set; CRIU >= 4.2 detects it.
func (r *runner) checkHWBreakpoints(ctx context.Context) []Check {
	const name = "hardware breakpoints"
	if r.opts.SelfExe == "" {
		return []Check{failed(name, false, "probe not run: path of the podctl binary unknown (Options.SelfExe)", "")}
	}
	return []Check{r.hwbpCheck(ctx, name, hwbpKinds())}
}

// hwbpCheck probes each kind of breakpoint and reports whether all fire.
func (r *runner) hwbpCheck(ctx context.Context, name string, kinds []hwbpKind) Check {
	var (
		results []string
		allFire = true
	)
	for _, kind := range kinds {
		res, err := probeHWBreakpoint(ctx, r.opts.SelfExe, kind, r.hwbpWait)
		if err != nil {
			return failed(name, false, fmt.Sprintf("probe failed: %s: %v", kind.name, err), "")
		}
		if res.fired {
			results = append(results, fmt.Sprintf("%s trapped (DR6=%#x)", kind.name, res.dr6))
		} else {
			allFire = false
			results = append(results, fmt.Sprintf("%s: no trap in %v (%d hits)", kind.name, r.hwbpWait, res.hits))
		}
	}
	if allFire {
		return informational(name, "fire: "+strings.Join(results, "; "), "")
	}
	return informational(name,
		"do not fire (CRIU >= 4.2 copes; CRIU 4.1 needs CRIU_FAULT=130): "+strings.Join(results, "; "), "")
}

// hwbpResult is the outcome of probeHWBreakpoint.
type hwbpResult struct {
	fired bool
	dr6   uint64 // DR6 as read back after the trap (when fired)
	hits  uint64 // times the child hit the address while armed (when not fired)
	pid   int    // the child process
	tid   int    // the traced thread
}

// probeHWBreakpoint starts `exe _hwbp-child`, arms a hardware breakpoint of
// the given kind on the thread that keeps calling hwbpTouch (or on the
// counter it increments) and waits up to wait for the resulting SIGTRAP.
// The child is always killed and reaped.
func probeHWBreakpoint(ctx context.Context, exe string, kind hwbpKind, wait time.Duration) (res hwbpResult, err error) {
	ctx, cancel := context.WithTimeout(ctx, wait+2*hwbpBannerTimeout)
	defer cancel()

	// ptrace requests must come from the thread that attached, and
	// PR_SET_PDEATHSIG fires when the thread that forked exits: do all of
	// it on one thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	c, err := startHWBPChild(exe)
	if err != nil {
		return res, err
	}
	defer func() {
		if kerr := c.kill(); kerr != nil {
			err = errors.Join(err, kerr)
		}
	}()

	b, err := c.readBanner(ctx)
	if err != nil {
		return res, err
	}
	tid := b.tid
	res.pid, res.tid = c.proc.Pid, tid
	addr := b.counter
	if kind.exec {
		addr = b.fn
	}

	if err := unix.PtraceSeize(tid); err != nil {
		return res, fmt.Errorf("PTRACE_SEIZE thread %d: %w", tid, err)
	}
	c.tracee = tid
	if err := unix.PtraceInterrupt(tid); err != nil {
		return res, fmt.Errorf("PTRACE_INTERRUPT thread %d: %w", tid, err)
	}
	ws, err := c.waitStop(ctx, time.Now().Add(hwbpBannerTimeout))
	if err != nil {
		return res, fmt.Errorf("stop thread %d: %w", tid, err)
	}
	inject := 0 // signal to deliver when resuming
	if stopEvent(ws) != unix.PTRACE_EVENT_STOP {
		inject = int(ws.StopSignal())
	}

	// Every call of hwbpTouch increments the counter: its growth counts
	// the hits of either kind of breakpoint.
	before, err := peekData(tid, b.counter)
	if err != nil {
		return res, err
	}
	if err := armBreakpoint(tid, addr, kind.dr7); err != nil {
		return res, err
	}
	if err := unix.PtraceCont(tid, inject); err != nil {
		return res, fmt.Errorf("PTRACE_CONT thread %d: %w", tid, err)
	}

	deadline := time.Now().Add(wait)
	for {
		ws, err := c.waitStop(ctx, deadline)
		if errors.Is(err, errNoStop) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("run armed thread %d: %w", tid, err)
		}
		switch {
		case stopEvent(ws) == unix.PTRACE_EVENT_STOP:
			// Group stop or a late interrupt: keep it running.
			inject = 0
		case ws.StopSignal() == unix.SIGTRAP:
			return trapResult(res, tid)
		default:
			// A signal for the child (the Go runtime's SIGURG, for
			// example): deliver it.
			inject = int(ws.StopSignal())
		}
		if err := unix.PtraceCont(tid, inject); err != nil {
			return res, fmt.Errorf("PTRACE_CONT thread %d: %w", tid, err)
		}
	}

	// No trap in time. Stop the thread and check that it did hit the
	// address, or the negative result would mean nothing.
	if err := unix.PtraceInterrupt(tid); err != nil {
		return res, fmt.Errorf("PTRACE_INTERRUPT thread %d: %w", tid, err)
	}
	ws, err = c.waitStop(ctx, time.Now().Add(hwbpBannerTimeout))
	if err != nil {
		return res, fmt.Errorf("stop thread %d: %w", tid, err)
	}
	if stopEvent(ws) != unix.PTRACE_EVENT_STOP && ws.StopSignal() == unix.SIGTRAP {
		return trapResult(res, tid) // the trap came just after the deadline
	}
	after, err := peekData(tid, b.counter)
	if err != nil {
		return res, err
	}
	if after == before {
		return res, fmt.Errorf("thread %d did not run hwbpTouch while armed: no result", tid)
	}
	res.hits = after - before
	return res, nil
}

// trapResult checks that the SIGTRAP tid stopped with comes from breakpoint
// 0 and completes res.
func trapResult(res hwbpResult, tid int) (hwbpResult, error) {
	dr6, err := peekUser(tid, dr6Offset)
	if err != nil {
		return res, err
	}
	if dr6&dr6B0 == 0 {
		return res, fmt.Errorf("SIGTRAP without breakpoint 0 set in DR6 (%#x)", dr6)
	}
	res.fired, res.dr6 = true, dr6
	return res, nil
}

// armBreakpoint sets DR0 to addr and DR7 to dr7, then reads both back: the
// kernel refuses (or silently drops) breakpoints it cannot install.
func armBreakpoint(tid int, addr uintptr, dr7Want uint64) error {
	if err := pokeUser(tid, dr0Offset, uint64(addr)); err != nil {
		return fmt.Errorf("set DR0: %w", err)
	}
	if err := pokeUser(tid, dr7Offset, dr7Want); err != nil {
		return fmt.Errorf("set DR7 to %#x: %w", dr7Want, err)
	}
	dr0, err := peekUser(tid, dr0Offset)
	if err != nil {
		return fmt.Errorf("read back DR0: %w", err)
	}
	dr7, err := peekUser(tid, dr7Offset)
	if err != nil {
		return fmt.Errorf("read back DR7: %w", err)
	}
	if dr0 != uint64(addr) || dr7 != dr7Want {
		return fmt.Errorf("debug registers read back as DR0=%#x DR7=%#x, want DR0=%#x DR7=%#x", dr0, dr7, addr, dr7Want)
	}
	return nil
}

// pokeUser writes val at offset off of the tracee's struct user.
func pokeUser(tid int, off uintptr, val uint64) error {
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_POKEUSR, uintptr(tid), off, uintptr(val), 0, 0)
	if errno != 0 {
		return fmt.Errorf("PTRACE_POKEUSER thread %d offset %d: %w", tid, off, errno)
	}
	return nil
}

// peekUser reads the word at offset off of the tracee's struct user.
func peekUser(tid int, off uintptr) (uint64, error) {
	var val uint64
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKUSR, uintptr(tid), off, uintptr(unsafe.Pointer(&val)), 0, 0)
	if errno != 0 {
		return 0, fmt.Errorf("PTRACE_PEEKUSER thread %d offset %d: %w", tid, off, errno)
	}
	return val, nil
}

// peekData reads the word at addr in the tracee's memory.
func peekData(tid int, addr uintptr) (uint64, error) {
	var val uint64
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKDATA, uintptr(tid), addr, uintptr(unsafe.Pointer(&val)), 0, 0)
	if errno != 0 {
		return 0, fmt.Errorf("PTRACE_PEEKDATA thread %d at %#x: %w", tid, addr, errno)
	}
	return val, nil
}

// stopEvent returns the PTRACE_EVENT_* of a ptrace stop (status >> 16).
func stopEvent(ws unix.WaitStatus) int {
	return int(ws >> 16)
}

// errNoStop is returned by waitStop when the deadline passes first.
var errNoStop = errors.New("no ptrace stop before the deadline")

// hwbpChild is a running `podctl _hwbp-child` process.
type hwbpChild struct {
	proc   *os.Process
	out    *os.File // read end of the child's stdout and stderr
	tracee int      // thread id being traced, 0 before PTRACE_SEIZE
}

// startHWBPChild starts `exe _hwbp-child` with stdout and stderr on a pipe.
// The child gets SIGKILL if the calling thread exits.
func startHWBPChild(exe string) (*hwbpChild, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	proc, err := os.StartProcess(exe, []string{exe, HWBreakpointChildArg}, &os.ProcAttr{
		Files: []*os.File{devnull, pw, pw},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	pw.Close()
	devnull.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("start %s %s: %w", exe, HWBreakpointChildArg, err)
	}
	return &hwbpChild{proc: proc, out: pr}, nil
}

// hwbpBanner is what the child reports about itself.
type hwbpBanner struct {
	counter uintptr // address of hwbpCounter
	fn      uintptr // entry address of hwbpTouch
	tid     int     // thread that calls hwbpTouch
}

// readBanner reads the child's
// "podctl-hwbp-child addr=0x... func=0x... tid=N" line.
func (c *hwbpChild) readBanner(ctx context.Context) (hwbpBanner, error) {
	deadline := time.Now().Add(hwbpBannerTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.out.SetReadDeadline(deadline); err != nil {
		return hwbpBanner{}, fmt.Errorf("set pipe deadline: %w", err)
	}
	br := bufio.NewReader(io.LimitReader(c.out, 64<<10))
	var other []string
	for {
		line, rerr := br.ReadString('\n')
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), hwbpChildBanner+" "); ok {
			return c.parseBanner(rest)
		}
		if rerr != nil {
			return hwbpBanner{}, fmt.Errorf("no %q line from probe child %d: %w (output: %q)",
				hwbpChildBanner, c.proc.Pid, rerr, truncate(strings.Join(other, ""), 200))
		}
		other = append(other, line)
	}
}

// parseBanner parses "addr=0x... func=0x... tid=N" and checks the values.
func (c *hwbpChild) parseBanner(s string) (hwbpBanner, error) {
	var b hwbpBanner
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "addr", "func":
			var a uint64
			a, err = strconv.ParseUint(v, 0, 64)
			if k == "addr" {
				b.counter = uintptr(a)
			} else {
				b.fn = uintptr(a)
			}
		case "tid":
			b.tid, err = strconv.Atoi(v)
		}
		if err != nil {
			return hwbpBanner{}, fmt.Errorf("child line %q: %w", s, err)
		}
	}
	if b.counter == 0 || b.counter%8 != 0 || b.fn == 0 || b.tid <= 0 {
		return hwbpBanner{}, fmt.Errorf("child line %q: want an 8-byte aligned addr, a func and a tid", s)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", c.proc.Pid, b.tid)); err != nil {
		return hwbpBanner{}, fmt.Errorf("child line %q: thread %d is not in process %d: %w", s, b.tid, c.proc.Pid, err)
	}
	return b, nil
}

// waitStop waits for the next ptrace stop of the tracee until deadline. It
// returns errNoStop when the deadline passes and an error when the tracee
// exits.
func (c *hwbpChild) waitStop(ctx context.Context, deadline time.Time) (unix.WaitStatus, error) {
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(c.tracee, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, fmt.Errorf("wait for thread %d: %w", c.tracee, err)
		case wpid == c.tracee && ws.Stopped():
			return ws, nil
		case wpid == c.tracee && (ws.Exited() || ws.Signaled()):
			c.tracee = 0 // reaped
			return 0, fmt.Errorf("thread exited unexpectedly (status %#x)", uint32(ws))
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if time.Now().After(deadline) {
			return 0, errNoStop
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// kill kills the child with SIGKILL and reaps the traced thread and the
// process, then releases the pipe.
func (c *hwbpChild) kill() error {
	defer c.out.Close()
	defer c.proc.Release()
	pid := c.proc.Pid
	var errs []error
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		errs = append(errs, fmt.Errorf("kill probe child %d: %w", pid, err))
	}
	// A traced thread other than the leader must be reaped by its tracer
	// before the leader's exit is reported.
	deadline := time.Now().Add(hwbpBannerTimeout)
	if c.tracee != 0 && c.tracee != pid {
		if err := reapExit(c.tracee, deadline); err != nil {
			errs = append(errs, err)
		}
	}
	if err := reapExit(pid, deadline); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// reapExit waits until id (a child process or a traced thread) has exited.
func reapExit(id int, deadline time.Time) error {
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(id, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			return nil // already reaped
		case err != nil:
			return fmt.Errorf("reap probe child %d: %w", id, err)
		case wpid == id && (ws.Exited() || ws.Signaled()):
			return nil
		case wpid == id:
			continue // a stop reported before SIGKILL took effect
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("probe child %d still not reaped after SIGKILL", id)
		}
		time.Sleep(time.Millisecond)
	}
}
