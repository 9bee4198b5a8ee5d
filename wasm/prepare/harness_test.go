package prepare

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	wabinary "github.com/tetratelabs/wabin/binary"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/podctl/podctl/test/harness"
	"github.com/podctl/podctl/wasm/internal/stopflag"
)

// buildC compiles testdata/<name>.c for wasm32-wasi into t's temporary
// directory, or skips t when the WASI C toolchain is not installed (see
// harness.WasmClang). clang optimizes the linked module with wasm-opt
// when it finds one on PATH and the optimization level is above -O0.
func buildC(t testing.TB, name string, flags ...string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), name+".wasm")
	args := append([]string{"-Wl,--strip-debug", "-Wl,-z,stack-size=8388608"}, flags...)
	harness.SkipOrFail(t, harness.BuildWasmC(out, append(args, filepath.Join("testdata", name+".c"))...))
	module, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return module
}

// buildGo builds testdata/goguest for wasip1 into t's temporary directory.
func buildGo(t testing.TB) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "goguest.wasm")
	if err := harness.BuildGoWasm(filepath.Join("testdata", "goguest"), out); err != nil {
		t.Fatal(err)
	}
	module, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return module
}

// buildWat assembles testdata/<name>.wat with wat2wasm.
func buildWat(t testing.TB, name string) []byte {
	t.Helper()
	wat2wasm := harness.NeedTool(t, "wat2wasm", "wabt")
	out := filepath.Join(t.TempDir(), name+".wasm")
	cmd := exec.Command(wat2wasm, "--enable-tail-call", "--debug-names", filepath.Join("testdata", name+".wat"), "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm %s: %v\n%s", name, err, b)
	}
	module, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return module
}

// validate runs wasm-validate on a module, when it is installed, with
// wabt's default features (WebAssembly 2.0) and tail calls.
func validate(t testing.TB, module []byte) {
	t.Helper()
	tool, err := harness.LookTool("wasm-validate", "wabt")
	if harness.Missing(err) {
		t.Logf("not validating: %v", err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "validate.wasm")
	if err := os.WriteFile(f, module, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(tool, "--enable-tail-call", f).CombinedOutput(); err != nil {
		t.Fatalf("wasm-validate: %v\n%s", err, b)
	}
}

// wasmOptPath returns the path of wasm-opt, or skips the test when it is
// not installed.
func wasmOptPath(t testing.TB) string { return harness.NeedTool(t, "wasm-opt", "binaryen") }

// runtimeConfig returns the wazero configuration of the tests: the
// compiler where wazero has one, sharing compiled code between runtimes
// through cache.
func runtimeConfig(cache wazero.CompilationCache) wazero.RuntimeConfig {
	return wazero.NewRuntimeConfig().WithCompilationCache(cache)
}

// outcome is how a run of a guest ended.
type outcome struct {
	stdout   string
	stderr   string
	exitCode uint32
	// unwound is true when the guest's call stack was unwound (and the
	// entry point returned because of it) rather than finished.
	unwound bool
}

// host is one wazero runtime running one instance of a guest, with WASI
// and a podctl.poll function that calls onPoll.
type host struct {
	rt  wazero.Runtime
	mod api.Module
	// flag is the instance's flag, nil if it has none (the module is not
	// instrumented). Every goroutine raises and lowers it through flag.
	flag   *stopflag.Flag
	stdout bytes.Buffer
	stderr bytes.Buffer
	onPoll func(ctx context.Context, h *host)
	// rewinding: the next run rewinds (through RewindExport, when the
	// module has it).
	rewinding bool
	// unwound is the part of the stack buffer a rewind under way reads:
	// the host zeroes it when the rewind ends (see stopper.poll).
	unwound [2]uint32
}

// newHost instantiates a module without running it: its entry point
// _start is for the caller to call.
func newHost(ctx context.Context, t testing.TB, cfg wazero.RuntimeConfig, module []byte, args ...string) *host {
	t.Helper()
	h := &host{rt: wazero.NewRuntimeWithConfig(ctx, cfg)}
	t.Cleanup(func() { h.close(context.Background()) })
	wasi_snapshot_preview1.MustInstantiate(ctx, h.rt)
	_, err := h.rt.NewHostModuleBuilder(PollModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, _ api.Module, _ []uint64) {
			if h.onPoll != nil {
				h.onPoll(ctx, h)
			}
		}), nil, nil).
		Export(PollFunc).
		Instantiate(ctx)
	if err != nil {
		t.Fatalf("instantiate %s: %v", PollModule, err)
	}
	compiled, err := h.rt.CompileModule(ctx, module)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	modCfg := wazero.NewModuleConfig().
		WithName("guest").
		WithArgs(append([]string{"guest"}, args...)...).
		WithStdout(&h.stdout).
		WithStderr(&h.stderr).
		WithStartFunctions()
	if h.mod, err = h.rt.InstantiateModule(ctx, compiled, modCfg); err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	if g, ok := h.mod.ExportedGlobal(FlagExport).(api.MutableGlobal); ok {
		h.flag = stopflag.New(g)
	}
	return h
}

// close closes the host's runtime, unless it is closed already, and lets
// go of it: a test that makes many hosts closes each when done with it,
// or the cleanup that closes it at the end of the test would keep every
// one's memory until then.
func (h *host) close(ctx context.Context) {
	if h.rt != nil {
		h.rt.Close(ctx)
		h.rt, h.mod, h.flag = nil, nil, nil
	}
}

// call calls an exported function of the guest.
func (h *host) call(ctx context.Context, name string, params ...uint64) ([]uint64, error) {
	f := h.mod.ExportedFunction(name)
	if f == nil {
		return nil, fmt.Errorf("no exported function %q", name)
	}
	return f.Call(ctx, params...)
}

// run calls the guest's entry point, or after a restore the function it
// rewinds through, and reports how it ended.
func (h *host) run(ctx context.Context) (outcome, error) {
	entry := "_start"
	if h.rewinding && h.mod.ExportedFunction(RewindExport) != nil {
		entry = RewindExport
	}
	h.rewinding = false
	_, err := h.call(ctx, entry)
	o := outcome{}
	var exit *sys.ExitError
	switch {
	case errors.As(err, &exit):
		o.exitCode = exit.ExitCode()
	case err != nil:
		return o, err
	default:
		if f := h.mod.ExportedFunction("asyncify_get_state"); f != nil {
			state, err := f.Call(ctx)
			if err != nil {
				return o, err
			}
			o.unwound = state[0] == asyncifyUnwinding
		}
	}
	o.stdout, o.stderr = h.stdout.String(), h.stderr.String()
	return o, nil
}

// runOnce runs a module from start to finish, with a poll function that
// does nothing but count, and returns how it ended and how many times the
// guest called the poll function.
func runOnce(ctx context.Context, t testing.TB, cache wazero.CompilationCache, module []byte, args ...string) (outcome, int) {
	t.Helper()
	return runFlagged(ctx, t, cache, module, false, args...)
}

// runFlagged is runOnce, but when flag is true another goroutine raises
// the flag of the instrumented module again whenever the poll function
// has lowered it: the guest then leaves for the poll function at nearly
// every poll point it passes.
func runFlagged(ctx context.Context, t testing.TB, cache wazero.CompilationCache, module []byte, flag bool, args ...string) (outcome, int) {
	t.Helper()
	h := newHost(ctx, t, runtimeConfig(cache), module, args...)
	polls := 0
	h.onPoll = func(context.Context, *host) { polls++ }
	if flag {
		if h.flag == nil {
			t.Fatalf("the module does not export the mutable global %s", FlagExport)
		}
		// The raising goroutine waits for each Lower rather than raise
		// the flag over and over, which would keep it locked.
		var lowered atomic.Int64
		h.onPoll = func(context.Context, *host) {
			polls++
			h.flag.Lower()
			lowered.Add(1)
		}
		h.flag.Raise()
		var stop atomic.Bool
		done := make(chan struct{})
		go func() {
			defer close(done)
			for seen := int64(0); !stop.Load(); {
				if n := lowered.Load(); n != seen {
					seen = n
					h.flag.Raise()
				}
			}
		}()
		defer func() { stop.Store(true); <-done }()
	}
	o, err := h.run(ctx)
	if err != nil {
		t.Fatalf("run: %v\nstderr: %s", err, h.stderr.String())
	}
	return o, polls
}

// Asyncify states, as asyncify_get_state returns them.
const (
	asyncifyNormal    = 0
	asyncifyUnwinding = 1
	asyncifyRewinding = 2
)

// vesselState is everything a prepared guest stopped at a poll point is:
// its memory, its mutable globals and where its call stack was unwound.
type vesselState struct {
	memory  []byte
	globals map[string]uint64
	// dataAddr is where the stack buffer starts (with Asyncify's data
	// structure); the buffer ends where memory does.
	dataAddr uint32
}

// mutableGlobalExports returns the names of the global exports a
// module has for its original mutable globals.
func mutableGlobalExports(t testing.TB, module []byte) []string {
	t.Helper()
	m, err := wabinary.DecodeModule(module, decodeFeatures)
	if err != nil {
		t.Fatalf("decode module: %v", err)
	}
	var names []string
	for _, e := range m.ExportSection {
		if strings.HasPrefix(e.Name, GlobalExportPrefix) {
			names = append(names, e.Name)
		}
	}
	return names
}

// stopper makes a host's poll function unwind the guest's stack when the
// flag is set, and finish a rewind when one is under way.
type stopper struct {
	globals []string // the exports of the guest's mutable globals
	bufSize uint32   // size of the asyncify buffer to allocate
	addr    uint32   // where the asyncify data structure went
	// bufEnd is where the stack buffer at addr ends, 0 if there is
	// none yet. The next stop reuses it if memory still ends there.
	bufEnd uint32
	// rewound, if not nil, is called when a rewind is over and the
	// guest runs on. (The host's part of a rewind is slow under the
	// race detector: a timer started before it could raise the flag
	// before the guest got anywhere, at every stop.)
	rewound func()
	polls   int // polls seen
	err     error
}

// resumed tells s that its guest was restored from st: its next stop
// may reuse st's stack buffer.
func (s *stopper) resumed(st *vesselState) {
	s.addr, s.bufEnd = st.dataAddr, uint32(len(st.memory))
}

// poll is the host poll function of a vessel: see the package tests.
func (s *stopper) poll(ctx context.Context, h *host) {
	s.polls++
	state, err := h.call(ctx, "asyncify_get_state")
	if err != nil {
		s.err = err
		return
	}
	if state[0] == asyncifyRewinding {
		if _, err := h.call(ctx, "asyncify_stop_rewind"); err != nil {
			s.err = err
			return
		}
		// The buffer is memory the guest's allocator did not grow, and
		// Go's runtime takes the pages past its own break as fresh, zero
		// pages the next time it grows memory: give them back zeroed.
		start, end := h.unwound[0], h.unwound[1]
		view, ok := h.mod.Memory().Read(start, end-start)
		if !ok {
			s.err = fmt.Errorf("cannot clear the stack buffer [%#x, %#x)", start, end)
			return
		}
		clear(view)
		if s.rewound != nil {
			s.rewound()
		}
		return
	}
	if !h.flag.Lower() {
		return
	}
	// The buffer goes into memory the host adds: the guest cannot be
	// using it. The last buffer, zeroed by the rewind that read it, is
	// still the host's if memory has not grown since: the guest's
	// allocator only takes pages it grew itself (as package vessel
	// relies on). A fresh buffer at every stop would make memory, and
	// the copies of it, grow with the number of stops. The data
	// structure is {current, end}, then the buffer.
	mem := h.mod.Memory()
	if s.bufEnd == 0 || mem.Size() != s.bufEnd {
		pages := (8 + s.bufSize + 65535) / 65536
		prev, ok := mem.Grow(pages)
		if !ok {
			s.err = fmt.Errorf("cannot grow memory by %d pages for the asyncify buffer", pages)
			return
		}
		s.addr, s.bufEnd = prev*65536, (prev+pages)*65536
	}
	var hdr [8]byte
	binary.LittleEndian.PutUint32(hdr[0:], s.addr+8)
	binary.LittleEndian.PutUint32(hdr[4:], s.addr+8+s.bufSize)
	h.mod.Memory().Write(s.addr, hdr[:])
	if _, err := h.call(ctx, "asyncify_start_unwind", uint64(s.addr)); err != nil {
		s.err = err
	}
}

// snapshot takes the state of a guest whose stack has been unwound.
func (s *stopper) snapshot(ctx context.Context, h *host) (*vesselState, error) {
	if _, err := h.call(ctx, "asyncify_stop_unwind"); err != nil {
		return nil, fmt.Errorf("asyncify_stop_unwind: %w", err)
	}
	mem := h.mod.Memory()
	view, ok := mem.Read(0, mem.Size())
	if !ok {
		return nil, errors.New("cannot read memory")
	}
	st := &vesselState{memory: bytes.Clone(view), globals: map[string]uint64{}, dataAddr: s.addr}
	for _, name := range s.globals {
		st.globals[name] = h.mod.ExportedGlobal(name).Get()
	}
	return st, nil
}

// restore writes a snapshot into a fresh instance and starts rewinding.
func restore(ctx context.Context, h *host, st *vesselState) error {
	mem := h.mod.Memory()
	if want := uint32(len(st.memory)); mem.Size() < want {
		if _, ok := mem.Grow((want - mem.Size()) / 65536); !ok {
			return fmt.Errorf("cannot grow memory to %d bytes", want)
		}
	}
	if !mem.Write(0, st.memory) {
		return errors.New("cannot write memory")
	}
	for name, v := range st.globals {
		g, ok := h.mod.ExportedGlobal(name).(api.MutableGlobal)
		if !ok {
			return fmt.Errorf("global %s is missing or immutable", name)
		}
		g.Set(v)
	}
	used, ok := mem.ReadUint32Le(st.dataAddr)
	if !ok || used < st.dataAddr+8 {
		return fmt.Errorf("bad stack buffer at %#x", st.dataAddr)
	}
	h.unwound = [2]uint32{st.dataAddr, used}
	if _, err := h.call(ctx, "asyncify_start_rewind", uint64(st.dataAddr)); err != nil {
		return fmt.Errorf("asyncify_start_rewind: %w", err)
	}
	h.rewinding = true
	return nil
}

// checkExports fails the test unless a prepared module has every export
// the host relies on.
func checkExports(t testing.TB, h *host) {
	t.Helper()
	for _, name := range []string{"asyncify_start_unwind", "asyncify_stop_unwind", "asyncify_start_rewind", "asyncify_stop_rewind", "asyncify_get_state"} {
		if h.mod.ExportedFunction(name) == nil {
			t.Errorf("prepared module does not export %s", name)
		}
	}
	if _, ok := h.mod.ExportedGlobal(FlagExport).(api.MutableGlobal); !ok {
		t.Errorf("prepared module does not export the mutable global %s", FlagExport)
	}
}

// firstLines returns at most n lines of s, for error messages.
func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
