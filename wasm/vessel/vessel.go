// Package vessel runs a prepared WebAssembly module (see package
// wasm/prepare) with wazero and its virtualized WASI (package wasm/wasi),
// and can stop it at any of its poll points into a portable snapshot
// (package wasm/snapshot), from which another vessel, on any host and any
// CPU, resumes it.
//
// # How a vessel stops
//
// The prepared module checks the exported global prepare.FlagExport at
// every loop header and at the entry of every function that can recurse,
// and calls the import podctl.poll when it is non-zero. To stop, the host
// sets the flag; the guest calls poll within a few instructions, wherever
// it is, without any help from the Go scheduler (wazero's compiled code is
// not preempted). poll then starts Asyncify's unwind: it grows linear
// memory by a buffer for the stack, calls asyncify_start_unwind and
// returns; every frame of the guest saves its locals and its position in
// the buffer and returns, down to the entry point, which returns to the
// host. After asyncify_stop_unwind, linear memory (buffer included), the
// globals and the WASI state are the whole execution state.
//
// To resume, a fresh instance of the same prepared module gets that
// memory and those globals back, asyncify_start_rewind is called with the
// buffer, and the entry point's rewinding twin (prepare.RewindExport) is
// called: each frame finds its saved state and re-enters its callee's
// twin, down to the poll call, where
// asyncify_stop_rewind ends the rewind and the guest carries on from
// where it stopped.
//
// The guest's goroutine holds its P for as long as it runs compiled
// code, which Go cannot preempt: Stop and Close must be called from
// another, so a process that runs vessels needs GOMAXPROCS of at least
// 2 (the supervisor sees to it).
//
// The flag is raised in one goroutine and lowered in the guest's: the
// host's accesses go through a stopflag.Flag, which orders them. The
// guest's own reads of the flag cannot be ordered with a raise; that is
// harmless, but under wazero's interpreter it is a data race that the
// race detector reports (see package wasm/internal/stopflag).
//
// A fresh vessel runs the prepared module's start module
// (prepare.Prepared.Start), which lacks the rewinding twins and compiles
// in half the time. It can stop like the prepared module, but not
// rewind: its first Continue moves the unwound guest to an instance of
// the prepared module in the same runtime (memory and globals copied,
// the WASI state kept), compiled meanwhile in the background, during
// which any further stop is served at once (see park).
//
// The buffer is linear memory the host grows for it. The next stop
// reuses it only if memory has not grown since: once the guest grows
// memory again, its allocator may take pages it did not allocate itself
// (Go's runtime assumes memory grows only for it, so it would take the
// buffer's), and the next stop grows a new buffer. The end of a rewind
// zeroes what the unwind wrote: a buffer's pages hold nothing once the
// guest runs again, so an allocator that takes them finds the fresh, zero
// memory it expects, and zero pages cost nothing in a snapshot.
package vessel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	wabinwasm "github.com/tetratelabs/wabin/wasm"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/podctl/podctl/wasm/internal/stopflag"
	"github.com/podctl/podctl/wasm/prepare"
	"github.com/podctl/podctl/wasm/snapshot"
	"github.com/podctl/podctl/wasm/wasi"
)

// DefaultStackBufferBytes is the default size of the buffer a stop unwinds
// the guest's call stack into: room for some 100,000 frames of a typical
// C program.
const DefaultStackBufferBytes = 8 << 20

// EntryPoint is the export a vessel runs: a WASI command's.
const EntryPoint = "_start"

// Asyncify's exports in a prepared module.
const (
	asyncifyStartUnwind = "asyncify_start_unwind"
	asyncifyStopUnwind  = "asyncify_stop_unwind"
	asyncifyStartRewind = "asyncify_start_rewind"
	asyncifyStopRewind  = "asyncify_stop_rewind"
)

// Config says what a vessel runs and with what.
type Config struct {
	// Module is the prepared module.
	Module *prepare.Prepared
	// WASI configures the system interface. On Resume, Args and Env come
	// from the snapshot, and each preopen's HostDir must be empty.
	WASI wasi.Config
	// StackBufferBytes is the size of the stack buffer of a stop
	// (DefaultStackBufferBytes when 0).
	StackBufferBytes uint32
	// MemoryLimitPages caps linear memory (wazero's default when 0).
	MemoryLimitPages uint32
	// Interpreter forces wazero's interpreter where its compiler exists.
	Interpreter bool
	// CompilationCache, if set, keeps compiled modules across vessels (a
	// dock resuming many vessels of one module compiles it once).
	CompilationCache wazero.CompilationCache
	// Held makes Resume leave the guest stopped where its snapshot was
	// taken, as Stop leaves it: Continue runs it, Close ends it, and
	// nothing of the guest runs before. (A migration's destination holds
	// the guest until its source commits.)
	Held bool
}

// ErrExited is returned by Snapshot for a vessel whose guest has exited.
var ErrExited = errors.New("vessel: the guest has exited")

// KilledExitCode is the exit status of a guest ended by Close (as a
// shell reports a process killed by SIGKILL).
const KilledExitCode = 137

// Vessel is a running prepared module.
type Vessel struct {
	cfg     Config
	rt      wazero.Runtime
	sys     *wasi.System
	globals []globalExport
	// instance is the guest's instance; it changes once, when a guest
	// started from the start module is first rewound (see
	// leaveStartModule). Stop and Close raise its flag under mu.
	*instance
	// native is the machine stack the instance's entry and rewind run on
	// (nil: wazero's own, see newNativeStack), which run releases when
	// it returns.
	native *nativeStack

	// stopRequested is set by Snapshot before it raises the flag; poll
	// unwinds only then (the flag alone could be stale). killRequested
	// is Close's: poll ends the guest.
	stopRequested, killRequested atomic.Bool
	// rewinding is set while a resumed guest rewinds to its poll point.
	rewinding bool
	// wake is signalled (without blocking) after a stop or kill request
	// raises the flag, for a guest waiting in poll_oneoff (see waiter).
	// wokenUntil is when the wait a stop interrupted would have ended:
	// its rewound call waits no longer.
	wake       chan struct{}
	wokenUntil time.Time
	// stack locates the unwound stack while the guest is stopped (zero
	// while it runs); buffer is the last stack buffer, which the next
	// stop reuses if it can (see stackBuffer).
	stack, buffer snapshot.Stack
	// unwoundEnd is where the data of the unwound stack a rewind under
	// way reads ends: endRewind zeroes the buffer up to there.
	unwoundEnd uint32

	// compiling counts compilations under way in the background (see
	// park).
	compiling sync.WaitGroup

	mu        sync.Mutex
	ended     bool          // the guest exited or was ended (exited is closed)
	paused    bool          // unwound by Stop, waiting for Continue or Close
	safepoint time.Duration // the last Stop's time-to-safepoint
	stopped   chan struct{} // closed when the guest is unwound or exited
	resume    chan bool     // the verdict on a stopped guest: run on, or end
	exited    chan struct{} // closed when the guest has exited or was ended
	exit      int
	err       error
}

// instance is an instance of a prepared module, or of its start module,
// and the exports a vessel calls.
type instance struct {
	compiled wazero.CompiledModule
	mod      api.Module
	flag     *stopflag.Flag
	// entry is the entry point, rewind the function a rewind goes
	// through (prepare.RewindExport, or entry in a module prepared
	// without it; nil in a start module, which cannot rewind). The
	// Asyncify functions are looked up once: each lookup makes a new
	// function with a stack of its own.
	entry, rewind                                    api.Function
	startUnwind, stopUnwind, startRewind, stopRewind api.Function
	// waitUnwinds says whether the module unwinds through poll_oneoff
	// (prepare.WaitExport).
	waitUnwinds bool
}

// globalExport is one global the prepared module exports for the host.
type globalExport struct {
	name  string
	index uint32
	typ   snapshot.ValueType
}

// Start instantiates cfg.Module and runs its entry point in the
// background.
func Start(ctx context.Context, cfg Config) (*Vessel, error) {
	w := new(waiter)
	cfg.WASI.Waiter = w
	sysIf, err := wasi.New(cfg.WASI)
	if err != nil {
		return nil, fmt.Errorf("vessel: %w", err)
	}
	v, err := instantiate(ctx, cfg, sysIf, true)
	if err != nil {
		sysIf.Close()
		return nil, err
	}
	w.v = v
	go v.run(ctx)
	return v, nil
}

// Resume instantiates snap's module (cfg.Module, whose hash must match),
// restores its memory, globals and WASI state, and runs the guest on from
// where it stopped, in the background.
func Resume(ctx context.Context, cfg Config, snap *snapshot.Snapshot) (*Vessel, error) {
	if err := snap.CheckModule(cfg.Module.Hash); err != nil {
		return nil, err
	}
	w := new(waiter)
	cfg.WASI.Waiter = w
	sysIf, err := wasi.Restore(cfg.WASI, snap.WASI)
	if err != nil {
		return nil, fmt.Errorf("vessel: %w", err)
	}
	v, err := instantiate(ctx, cfg, sysIf, false)
	if err != nil {
		sysIf.Close()
		return nil, err
	}
	w.v = v
	if err := v.restoreState(snap); err != nil {
		v.close(ctx)
		v.native.release()
		return nil, err
	}
	if err := v.beginRewind(ctx); err != nil {
		v.close(ctx)
		v.native.release()
		return nil, fmt.Errorf("vessel: %w", err)
	}
	if !cfg.Held {
		go v.run(ctx)
		return v, nil
	}
	v.paused = true
	go func() {
		if <-v.resume {
			v.run(ctx)
			return
		}
		v.native.release()
		v.finish(sys.NewExitError(KilledExitCode))
	}()
	return v, nil
}

// instantiate makes a vessel's runtime, its host modules and an instance
// of cfg.Module: of its start module, if fresh is set and it has one.
func instantiate(ctx context.Context, cfg Config, sysIf *wasi.System, fresh bool) (*Vessel, error) {
	if cfg.StackBufferBytes == 0 {
		cfg.StackBufferBytes = DefaultStackBufferBytes
	}
	globals, err := listGlobalExports(cfg.Module.Bytes)
	if err != nil {
		return nil, err
	}
	rc := wazero.NewRuntimeConfig()
	if cfg.Interpreter {
		rc = wazero.NewRuntimeConfigInterpreter()
	}
	if cfg.MemoryLimitPages != 0 {
		rc = rc.WithMemoryLimitPages(cfg.MemoryLimitPages)
	}
	if cfg.CompilationCache != nil {
		rc = rc.WithCompilationCache(cfg.CompilationCache)
	}
	v := &Vessel{
		cfg: cfg, rt: wazero.NewRuntimeWithConfig(ctx, rc), sys: sysIf, globals: globals,
		stopped: make(chan struct{}), resume: make(chan bool), exited: make(chan struct{}),
		wake: make(chan struct{}, 1),
	}
	fail := func(err error) (*Vessel, error) {
		v.rt.Close(ctx)
		return nil, fmt.Errorf("vessel: %w", err)
	}
	if _, err := sysIf.Instantiate(ctx, v.rt); err != nil {
		return fail(err)
	}
	_, err = v.rt.NewHostModuleBuilder(prepare.PollModule).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(v.poll), nil, nil).Export(prepare.PollFunc).
		Instantiate(ctx)
	if err != nil {
		return fail(err)
	}
	if v.instance, err = v.newInstance(ctx, fresh && cfg.Module.Start != nil); err != nil {
		return fail(err)
	}
	v.native = newNativeStack(v.runners()...)
	return v, nil
}

// newInstance compiles and instantiates the prepared module, or its start
// module, in the vessel's runtime, without running anything.
func (v *Vessel) newInstance(ctx context.Context, start bool) (*instance, error) {
	module := v.cfg.Module.Bytes
	if start {
		module = v.cfg.Module.Start
	}
	compiled, err := v.rt.CompileModule(ctx, module)
	if err != nil {
		return nil, err
	}
	// Anonymous, so that the prepared module can be instantiated beside
	// its start module; the entry point is called by run, never by
	// instantiation.
	mod, err := v.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, MemoryAllocator()), compiled,
		wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		compiled.Close(ctx)
		return nil, err
	}
	fail := func(err error) (*instance, error) {
		(&instance{compiled: compiled, mod: mod}).close(ctx)
		return nil, err
	}
	for _, name := range []string{EntryPoint, asyncifyStartUnwind, asyncifyStopUnwind, asyncifyStartRewind, asyncifyStopRewind} {
		if mod.ExportedFunction(name) == nil {
			return fail(fmt.Errorf("module %x is not prepared: it does not export %s", v.cfg.Module.Hash[:6], name))
		}
	}
	flagGlobal, ok := mod.ExportedGlobal(prepare.FlagExport).(api.MutableGlobal)
	if !ok {
		return fail(fmt.Errorf("module %x is not prepared: it does not export %s", v.cfg.Module.Hash[:6], prepare.FlagExport))
	}
	if mod.Memory() == nil {
		return fail(errors.New("module has no memory"))
	}
	in := &instance{
		compiled:    compiled,
		mod:         mod,
		flag:        stopflag.New(flagGlobal),
		entry:       mod.ExportedFunction(EntryPoint),
		startUnwind: mod.ExportedFunction(asyncifyStartUnwind),
		stopUnwind:  mod.ExportedFunction(asyncifyStopUnwind),
		startRewind: mod.ExportedFunction(asyncifyStartRewind),
		stopRewind:  mod.ExportedFunction(asyncifyStopRewind),
		waitUnwinds: mod.ExportedFunction(prepare.WaitExport) != nil,
	}
	switch {
	case start:
		// Its RewindExport has no code.
	case mod.ExportedFunction(prepare.RewindExport) != nil:
		in.rewind = mod.ExportedFunction(prepare.RewindExport)
	default:
		in.rewind = in.entry
	}
	return in, nil
}

// leaveStartModule moves a guest that was unwound in an instance of the
// start module, which cannot rewind, to in, an instance of the prepared
// module in the same runtime, with the same WASI state: its memory and
// globals are copied over. It costs a compilation of the prepared module,
// once per vessel, on the first Continue (a resumed vessel starts from
// the prepared module).
func (v *Vessel) leaveStartModule(ctx context.Context, in *instance) error {
	old := v.instance
	if err := copyState(old.mod, in.mod, v.globals); err != nil {
		in.close(ctx)
		return err
	}
	v.mu.Lock()
	v.instance = in
	if v.requested() {
		// Raised on the old instance meanwhile.
		in.flag.Raise()
	}
	v.mu.Unlock()
	v.native.release()
	v.native = newNativeStack(in.runners()...)
	return old.close(ctx)
}

// runners returns the functions the guest runs in: entry and rewind.
func (in *instance) runners() []api.Function {
	if in.rewind == nil || in.rewind == in.entry {
		return []api.Function{in.entry}
	}
	return []api.Function{in.entry, in.rewind}
}

// close releases an instance that no call runs in.
func (in *instance) close(ctx context.Context) error {
	return errors.Join(in.mod.Close(ctx), in.compiled.Close(ctx))
}

// copyState copies linear memory and the exported globals from one
// instance of a prepared module to another.
func copyState(from, to api.Module, globals []globalExport) error {
	data, _ := from.Memory().Read(0, from.Memory().Size())
	if err := writeMemory(to.Memory(), data); err != nil {
		return err
	}
	for _, g := range globals {
		src := from.ExportedGlobal(g.name)
		if src == nil {
			return fmt.Errorf("vessel: global %s missing", g.name)
		}
		if err := setGlobal(to, g, src.Get()); err != nil {
			return err
		}
	}
	return nil
}

// listGlobalExports returns the globals a prepared module exports under
// prepare.GlobalExportPrefix, in index order.
func listGlobalExports(module []byte) ([]globalExport, error) {
	m, err := prepare.DecodeDeclarations(module)
	if err != nil {
		return nil, fmt.Errorf("vessel: decode module: %w", err)
	}
	var types []wabinwasm.ValueType
	for _, im := range m.ImportSection {
		if im.Type == wabinwasm.ExternTypeGlobal {
			types = append(types, im.DescGlobal.ValType)
		}
	}
	for _, g := range m.GlobalSection {
		types = append(types, g.Type.ValType)
	}
	var out []globalExport
	for _, e := range m.ExportSection {
		if e.Type != wabinwasm.ExternTypeGlobal || !strings.HasPrefix(e.Name, prepare.GlobalExportPrefix) {
			continue
		}
		if int(e.Index) >= len(types) {
			return nil, fmt.Errorf("vessel: export %s: no global %d", e.Name, e.Index)
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(e.Name, prepare.GlobalExportPrefix), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("vessel: export %s: bad global index", e.Name)
		}
		out = append(out, globalExport{name: e.Name, index: uint32(n), typ: snapshot.ValueType(types[e.Index])})
	}
	sortGlobals(out)
	return out, nil
}

func sortGlobals(g []globalExport) {
	for i := 1; i < len(g); i++ {
		for j := i; j > 0 && g[j].index < g[j-1].index; j-- {
			g[j], g[j-1] = g[j-1], g[j]
		}
	}
}

// run calls the entry point until the guest exits for good: after each
// unwind it waits for Snapshot's verdict, and rewinds to run on if told
// to.
func (v *Vessel) run(ctx context.Context) {
	// No call runs on the guest's stack once run returns, not even
	// when Close gave up waiting and closed the runtime under it.
	defer func() { v.native.release() }()
	for {
		fn := v.entry
		if v.rewinding {
			fn = v.rewind
		}
		_, err := fn.Call(ctx)
		if err == nil && v.unwinding() {
			_, err = v.stopUnwind.Call(ctx)
			runOn := false
			if err == nil {
				runOn, err = v.park(ctx)
			}
			if err == nil && !runOn {
				v.finish(sys.NewExitError(KilledExitCode))
				return
			}
			if err == nil {
				if err = v.beginRewind(ctx); err == nil {
					continue
				}
			}
		}
		v.finish(err)
		return
	}
}

// park holds a guest that a stop unwound until Stop's caller decides, and
// reports whether it is to run on (rewind) or end. A guest started from
// the start module runs on in an instance of the prepared module (see
// leaveStartModule), which is compiled first, in the background: a stop
// requested meanwhile is served at once, from the state the guest is
// still unwound in, so that the compilation never counts in a
// time-to-safepoint.
func (v *Vessel) park(ctx context.Context) (bool, error) {
	type result struct {
		in  *instance
		err error
	}
	var ready chan result
	for {
		v.mu.Lock()
		withdrawn := !v.stopRequested.Load()
		if !withdrawn {
			close(v.stopped)
		}
		v.mu.Unlock()
		if !withdrawn && !<-v.resume {
			return false, nil
		}
		if v.rewind != nil {
			return true, nil
		}
		if ready == nil {
			// The runtime is closed only once this is done (see close):
			// wazero cannot close it under a compilation.
			ready = make(chan result, 1)
			v.compiling.Add(1)
			go func() {
				defer v.compiling.Done()
				in, err := v.newInstance(ctx, false)
				ready <- result{in, err}
			}()
		}
	compiling:
		for {
			select {
			case r := <-ready:
				if r.err != nil {
					return false, fmt.Errorf("vessel: instantiate the prepared module: %w", r.err)
				}
				return true, v.leaveStartModule(ctx, r.in)
			case <-v.wake:
				switch {
				case v.killRequested.Load():
					return false, nil
				case v.stopRequested.Load():
					break compiling
				}
				// A stale wake-up (of a request already served).
			}
		}
	}
}

// unwinding reports whether poll started an unwind (the entry point then
// returned because of it, not because the guest is done).
func (v *Vessel) unwinding() bool { return v.stack.End != 0 && v.stopRequested.Load() && !v.rewinding }

// finish records how the guest ended.
func (v *Vessel) finish(err error) {
	var exit *sys.ExitError
	switch {
	case err == nil:
		v.exit = 0
	case errors.As(err, &exit):
		v.exit = int(exit.ExitCode())
	default:
		v.err = fmt.Errorf("vessel: guest trapped: %w", err)
	}
	v.mu.Lock()
	v.ended = true
	close(v.exited)
	select {
	case <-v.stopped:
	default:
		close(v.stopped)
	}
	v.mu.Unlock()
}

// poll is the guest's import podctl.poll, called when the flag is set.
func (v *Vessel) poll(ctx context.Context, m api.Module, _ []uint64) {
	v.endRewind(ctx)
	if !v.requested() {
		// A stale flag (a request withdrawn, or the one just served).
		// Requests store their intent before they raise the flag, so
		// one made while the flag is lowered here is seen by the check
		// that follows, or raises the flag again after it (see
		// stopflag.Flag.Lower).
		v.flag.Lower()
		if !v.requested() {
			return
		}
	}
	if v.killRequested.Load() {
		panic(sys.NewExitError(KilledExitCode))
	}
	v.unwind(ctx, m)
}

// beginRewind starts rewinding the guest from the unwound stack at
// v.stack; the next call of the guest must be v.rewind.
func (v *Vessel) beginRewind(ctx context.Context) error {
	// Asyncify's data structure holds the end of what the unwind wrote;
	// the rewind reads it back down to the buffer's start.
	used, ok := v.mod.Memory().ReadUint32Le(v.stack.DataAddr)
	if !ok || used < v.stack.Start || used > v.stack.End {
		return fmt.Errorf("start rewind: the stack buffer [%#x, %#x) ends its data at %#x", v.stack.Start, v.stack.End, used)
	}
	if _, err := v.startRewind.Call(ctx, uint64(v.stack.DataAddr)); err != nil {
		return fmt.Errorf("start rewind: %w", err)
	}
	v.rewinding = true
	v.unwoundEnd = used
	return nil
}

// endRewind ends a rewind: the resumed guest is back in the call it was
// unwound from (poll, or poll_oneoff).
//
// It then zeroes the part of the stack buffer the unwind wrote. The
// buffer's pages are past the guest allocator's own break, and Go's
// runtime, whose break is a variable of its own rather than the size of
// memory, takes such pages as fresh, zero memory the next time it grows
// (runtime.sbrk on wasm): left as they are, the saved frames became its
// heap bitmaps and spans, and the guest died with "grew heap, but no
// adequate free space found" (issue 13).
func (v *Vessel) endRewind(ctx context.Context) {
	if !v.rewinding {
		return
	}
	v.rewinding = false
	if _, err := v.stopRewind.Call(ctx); err != nil {
		panic(fmt.Errorf("stop rewind: %w", err))
	}
	clearMemory(v.mod.Memory(), v.stack.DataAddr, v.unwoundEnd)
	v.stack = snapshot.Stack{}
}

// clearMemory zeroes linear memory in [start, end).
func clearMemory(mem api.Memory, start, end uint32) {
	view, ok := mem.Read(start, end-start)
	if !ok {
		panic(fmt.Errorf("clear memory [%#x, %#x): out of range", start, end))
	}
	clear(view)
}

// unwind starts unwinding the guest from the host function it called
// into a stack buffer; the function must then return at once.
func (v *Vessel) unwind(ctx context.Context, m api.Module) {
	addr, end := v.stackBuffer(m.Memory())
	// Asyncify's data structure: the current and the end pointer of the
	// buffer that follows it.
	if !m.Memory().WriteUint32Le(addr, addr+8) || !m.Memory().WriteUint32Le(addr+4, end) {
		panic("stack buffer out of memory")
	}
	v.stack = snapshot.Stack{DataAddr: addr, Start: addr + 8, End: end}
	v.buffer = v.stack
	v.flag.Lower()
	if _, err := v.startUnwind.Call(ctx, uint64(addr)); err != nil {
		panic(fmt.Errorf("start unwind: %w", err))
	}
}

// waiter is a vessel's wasi.Waiter: a stop request unwinds a guest
// waiting in poll_oneoff from there, as from a poll point, and a kill
// ends it. A rewound guest calls poll_oneoff again with the same
// arguments; in the same vessel it waits only until the interrupted wait
// would have ended, in a resumed one (no host clock survives a move) it
// waits its whole time again, which is late but never early.
type waiter struct{ v *Vessel }

func (w *waiter) Enter(ctx context.Context, _ api.Module) { w.v.endRewind(ctx) }

func (w *waiter) Wait(ctx context.Context, m api.Module, d time.Duration) bool {
	v := w.v
	if !v.wokenUntil.IsZero() {
		d = min(d, time.Until(v.wokenUntil))
		v.wokenUntil = time.Time{}
	}
	var until time.Time
	if d < 100*365*24*time.Hour {
		until = time.Now().Add(d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		case <-v.wake:
		}
		switch {
		case v.killRequested.Load():
			panic(sys.NewExitError(KilledExitCode))
		case v.stopRequested.Load() && v.waitUnwinds:
			v.wokenUntil = until
			v.unwind(ctx, m)
			return true
		}
		// A stale wake-up, or a module that cannot unwind from here
		// (prepared by an older podctl): wait on.
	}
}

// wakeWaiter wakes a guest waiting in poll_oneoff, if one is.
func (v *Vessel) wakeWaiter() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// stackBuffer returns the buffer to unwind into: the last one if memory
// has not grown since it was appended (then no allocator can have taken
// its pages: wasi-libc's sbrk and Go's runtime only ever extend into
// memory they grow themselves), otherwise new pages at the end of memory.
func (v *Vessel) stackBuffer(mem api.Memory) (addr, end uint32) {
	if b := v.buffer; b.End != 0 && mem.Size() == b.End {
		return b.DataAddr, b.End
	}
	pages := (v.cfg.StackBufferBytes + snapshot.PageSize - 1) / snapshot.PageSize
	prev, ok := mem.Grow(pages)
	if !ok {
		panic(fmt.Errorf("no memory left for a %d KiB stack buffer", pages*snapshot.PageSize>>10))
	}
	return prev * snapshot.PageSize, (prev + pages) * snapshot.PageSize
}

func (v *Vessel) requested() bool { return v.stopRequested.Load() || v.killRequested.Load() }

// Stop stops the guest at its next poll point and returns its state,
// leaving it stopped: Continue runs it on, Close ends it. Stdout and
// Stderr of the WASI state are left for the caller, who owns the logs.
// It returns ErrExited if the guest exits first; if ctx ends first, the
// request is withdrawn and the guest runs on.
func (v *Vessel) Stop(ctx context.Context) (*snapshot.Snapshot, error) {
	v.mu.Lock()
	select {
	case <-v.exited:
		v.mu.Unlock()
		return nil, ErrExited
	default:
	}
	if v.paused {
		v.mu.Unlock()
		return nil, errors.New("vessel: already stopped")
	}
	v.stopped = make(chan struct{})
	stopped := v.stopped
	requested := time.Now()
	v.stopRequested.Store(true)
	v.flag.Raise()
	v.mu.Unlock()
	v.wakeWaiter()
	select {
	case <-stopped:
	case <-ctx.Done():
		// Withdraw the request. The guest may be unwinding already: run
		// then sees the withdrawal and rewinds at once, or it stopped
		// just now and is let go on here.
		v.mu.Lock()
		v.stopRequested.Store(false)
		select {
		case <-stopped:
			if !v.ended {
				v.resume <- true
			}
		default:
		}
		v.mu.Unlock()
		return nil, fmt.Errorf("vessel: stop: %w", ctx.Err())
	}
	v.mu.Lock()
	v.stopRequested.Store(false)
	if v.ended {
		v.mu.Unlock()
		return nil, ErrExited
	}
	v.paused = true
	v.safepoint = time.Since(requested)
	v.mu.Unlock()
	snap, err := v.capture()
	if err != nil {
		// The guest is intact: let it run on.
		v.Continue()
		return nil, err
	}
	return snap, nil
}

// LastSafepoint is how long the last Stop waited for the guest to reach a
// poll point and unwind: its time-to-safepoint.
func (v *Vessel) LastSafepoint() time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.safepoint
}

// Continue runs a guest that Stop stopped on from where it stopped.
func (v *Vessel) Continue() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.paused {
		v.paused = false
		v.resume <- true
	}
}

// capture reads the stopped guest's state.
func (v *Vessel) capture() (*snapshot.Snapshot, error) {
	mem := v.mod.Memory()
	data, ok := mem.Read(0, mem.Size())
	if !ok {
		return nil, errors.New("vessel: read memory")
	}
	snap := &snapshot.Snapshot{
		ModuleHash: v.cfg.Module.Hash,
		Memory:     append([]byte(nil), data...),
		Stack:      v.stack,
	}
	for _, g := range v.globals {
		gl := v.mod.ExportedGlobal(g.name)
		if gl == nil {
			return nil, fmt.Errorf("vessel: global %s missing", g.name)
		}
		snap.Globals = append(snap.Globals, snapshot.Global{Type: g.typ, Value: gl.Get()})
	}
	st, err := v.sys.State()
	if err != nil {
		return nil, fmt.Errorf("vessel: %w", err)
	}
	snap.WASI = st
	return snap, nil
}

// restoreState gives a fresh instance a snapshot's memory and globals.
func (v *Vessel) restoreState(snap *snapshot.Snapshot) error {
	if len(snap.Globals) != len(v.globals) {
		return fmt.Errorf("vessel: snapshot has %d globals, module exports %d", len(snap.Globals), len(v.globals))
	}
	if err := writeMemory(v.mod.Memory(), snap.Memory); err != nil {
		return err
	}
	for i, g := range v.globals {
		sg := snap.Globals[i]
		if sg.Type != g.typ {
			return fmt.Errorf("vessel: global %d: snapshot type %#x, module type %#x", g.index, sg.Type, g.typ)
		}
		if err := setGlobal(v.mod, g, sg.Value); err != nil {
			return err
		}
	}
	v.stack, v.buffer = snap.Stack, snap.Stack
	return nil
}

// writeMemory gives a fresh instance's memory the contents data, growing
// it to data's size.
func writeMemory(mem api.Memory, data []byte) error {
	have := mem.Size()
	want := uint32(len(data))
	if want < have {
		return fmt.Errorf("vessel: snapshot memory (%d pages) is smaller than the module's initial memory (%d pages)", want/snapshot.PageSize, have/snapshot.PageSize)
	}
	if want > have {
		if _, ok := mem.Grow((want - have) / snapshot.PageSize); !ok {
			return fmt.Errorf("vessel: cannot grow memory to %d pages (limit)", want/snapshot.PageSize)
		}
	}
	if !mem.Write(0, data) {
		return errors.New("vessel: write memory")
	}
	return nil
}

// setGlobal sets an exported global of an instance.
func setGlobal(mod api.Module, g globalExport, value uint64) error {
	mg, ok := mod.ExportedGlobal(g.name).(api.MutableGlobal)
	if !ok {
		return fmt.Errorf("vessel: global %d is not mutable", g.index)
	}
	mg.Set(value)
	return nil
}

// Wait returns the guest's exit status once it has exited.
func (v *Vessel) Wait(ctx context.Context) (int, error) {
	select {
	case <-v.exited:
		return v.exit, v.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Close ends the guest, running or stopped, and releases the vessel. A
// running guest is ended at its next poll point (or when ctx ends, if it
// never reaches one: the runtime is then closed under it).
func (v *Vessel) Close(ctx context.Context) error {
	v.mu.Lock()
	if v.paused {
		v.paused = false
		v.resume <- false
	}
	v.killRequested.Store(true)
	v.flag.Raise()
	v.mu.Unlock()
	v.wakeWaiter()
	select {
	case <-v.exited:
	case <-ctx.Done():
	}
	return v.close(context.WithoutCancel(ctx))
}

func (v *Vessel) close(ctx context.Context) error {
	v.compiling.Wait()
	err := v.rt.Close(ctx)
	return errors.Join(err, v.sys.Close())
}
