package vessel_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podctl/podctl/internal/race"
	"github.com/podctl/podctl/test/harness"
	"github.com/podctl/podctl/wasm/prepare"
	"github.com/podctl/podctl/wasm/snapshot"
	"github.com/podctl/podctl/wasm/vessel"
	"github.com/podctl/podctl/wasm/wasi"
)

var (
	buildOnce sync.Once
	built     map[string]harness.WasmWorkload
	buildErr  error
	buildDir  string // removed by TestMain
	cacheDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// workloads builds test/workloads/wasm once, and the spin, sleep and
// brk programs.
func workloads(t testing.TB) map[string]harness.WasmWorkload {
	t.Helper()
	harness.NeedTool(t, "wasm-opt", "binaryen")
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vessel-test-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		cacheDir = filepath.Join(dir, "cache")
		if built, buildErr = harness.BuildWasmWorkloads(dir); buildErr != nil {
			return
		}
		for _, name := range []string{"spin", "sleep", "brk"} {
			path := filepath.Join(dir, name+".wasm")
			if buildErr = harness.BuildWasmC(path, "-O2", filepath.Join("testdata", name+".c")); buildErr != nil {
				return
			}
			built[name] = harness.WasmWorkload{Name: name, Path: path}
		}
	})
	harness.SkipOrFail(t, buildErr)
	return built
}

func prepared(t testing.TB, wl harness.WasmWorkload) *prepare.Prepared {
	t.Helper()
	module, err := os.ReadFile(wl.Path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := prepare.Cache{Dir: cacheDir}.Prepare(context.Background(), module)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer is a goroutine-safe stdout.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stopsRunning is called by a test before it stops a guest that may be
// running, under wazero's interpreter if interp. The interpreter reads
// the flag a stop raises without synchronization, a data race inside
// wazero that no host can avoid and that the race detector reports (see
// package wasm/internal/stopflag): under the race detector, such a test
// skips; it runs without it.
func stopsRunning(t *testing.T, interp bool) {
	t.Helper()
	if interp && race.Enabled {
		t.Skip("raising the flag of a running interpreted guest is a race inside wazero's interpreter (see wasm/internal/stopflag)")
	}
}

func config(t testing.TB, wl harness.WasmWorkload, out *syncBuffer, interpreter bool) vessel.Config {
	cfg := vessel.Config{
		Module:      prepared(t, wl),
		WASI:        wasi.Config{Args: append([]string{wl.Name}, wl.Args...), Stdout: out},
		Interpreter: interpreter,
	}
	if wl.NeedsData {
		cfg.WASI.Preopens = []wasi.PreopenDir{{GuestPath: harness.WasmDataDir, HostDir: t.TempDir()}}
	}
	return cfg
}

// TestStopResume stops each workload twice mid-run, once letting it run
// on and once moving its encoded snapshot to a fresh vessel (and fresh
// directories), and checks that the guest ends exactly like an
// uninterrupted run: stdout, exit code and /data.
func TestStopResume(t *testing.T) {
	wls := workloads(t)
	for _, name := range []string{"recurse", "heap", "files", "deep", "gowork"} {
		wl := wls[name]
		for _, interp := range []bool{false, true} {
			t.Run(name+map[bool]string{false: "", true: "/interpreter"}[interp], func(t *testing.T) {
				stopsRunning(t, interp)
				ctx := context.Background()
				var out1 syncBuffer
				cfg := config(t, wl, &out1, interp)
				v, err := vessel.Start(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				waitLines(t, &out1, 3)
				if _, err := v.Stop(ctx); err != nil {
					t.Fatal(err)
				}
				v.Continue()
				waitLines(t, &out1, 6)
				snap, err := v.Stop(ctx)
				if err != nil {
					t.Fatal(err)
				}
				v.Close(ctx)
				var out2 syncBuffer
				cfg2 := config(t, wl, &out2, interp)
				v2 := move(t, snap, cfg2)
				defer v2.Close(ctx)
				code, err := v2.Wait(ctx)
				if err != nil {
					t.Fatal(err)
				}
				wantOut, wantData, err := wl.Golden()
				if err != nil {
					t.Fatal(err)
				}
				if got := out1.String() + out2.String(); got != wantOut {
					t.Errorf("stdout:\n got %q\nwant %q", got, wantOut)
				}
				if code != wl.WantExit {
					t.Errorf("exit %d, want %d", code, wl.WantExit)
				}
				if wl.NeedsData {
					got, err := harness.WasmTree(cfg2.WASI.Preopens[0].HostDir)
					if err != nil {
						t.Fatal(err)
					}
					if got != wantData {
						t.Errorf("/data:\n got %s\nwant %s", got, wantData)
					}
				}
			})
		}
	}
}

// TestResumeHeld resumes a snapshot held, as a migration's destination
// does: the guest writes nothing until Continue, then ends exactly like an
// uninterrupted run; a held guest that is closed instead never runs.
func TestResumeHeld(t *testing.T) {
	wl := workloads(t)["files"]
	ctx := context.Background()
	var out1 syncBuffer
	v, err := vessel.Start(ctx, config(t, wl, &out1, false))
	if err != nil {
		t.Fatal(err)
	}
	waitLines(t, &out1, 3)
	snap, err := v.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v.Close(ctx)

	var out2 syncBuffer
	cfg := config(t, wl, &out2, false)
	cfg.Held = true
	held := move(t, snap, cfg)
	// A guest let run would print its next line within this time (it
	// printed three in less); the held one must not.
	waitCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = held.Wait(waitCtx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || out2.String() != "" {
		t.Fatalf("held guest ran: wait %v, stdout %q", err, out2.String())
	}
	if _, err := held.Stop(ctx); err == nil {
		t.Error("Stop of a held guest succeeded; want \"already stopped\"")
	}
	held.Continue()
	code, err := held.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantOut, _, err := wl.Golden()
	if err != nil {
		t.Fatal(err)
	}
	if got := out1.String() + out2.String(); got != wantOut || code != wl.WantExit {
		t.Errorf("after Continue: exit %d, stdout %q; want %d, %q", code, got, wl.WantExit, wantOut)
	}
	held.Close(ctx)

	var out3 syncBuffer
	cfg = config(t, wl, &out3, false)
	cfg.Held = true
	closed := move(t, snap, cfg)
	if err := closed.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _ := closed.Wait(ctx); code != vessel.KilledExitCode || out3.String() != "" {
		t.Errorf("closed while held: exit %d, stdout %q; want %d and nothing", code, out3.String(), vessel.KilledExitCode)
	}
}

// move encodes snap, decodes it and resumes it in a fresh vessel with
// cfg.
func move(t *testing.T, snap *snapshot.Snapshot, cfg vessel.Config) *vessel.Vessel {
	t.Helper()
	var enc bytes.Buffer
	if err := snapshot.Encode(&enc, snap); err != nil {
		t.Fatal(err)
	}
	moved, err := snapshot.Decode(&enc, snapshot.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	v, err := vessel.Resume(context.Background(), cfg, moved)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func waitLines(t *testing.T, out *syncBuffer, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for strings.Count(out.String(), "\n") < n {
		if time.Now().After(deadline) {
			t.Fatalf("guest printed %q, waiting for %d lines", out.String(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStopTightLoop stops a guest spinning in a loop without calls, 50
// times, with the host's other cores busy: each request must be honoured
// (the poll point at the loop header), and the guest must then run on.
func TestStopTightLoop(t *testing.T) {
	wls := workloads(t)
	// A garbage collection would wait for the spinning guest to call
	// into Go, which it never does (see vessel.Supervise's GC setting).
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	ctx := context.Background()
	v, err := vessel.Start(ctx, config(t, wls["spin"], new(syncBuffer), false))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close(ctx)
	stopBusy := busy()
	defer stopBusy()
	var safepoints []time.Duration
	for i := 0; i < 50; i++ {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := v.Stop(sctx)
		cancel()
		if err != nil {
			t.Fatalf("stop %d: %v", i, err)
		}
		safepoints = append(safepoints, v.LastSafepoint())
		v.Continue()
	}
	sort.Slice(safepoints, func(i, j int) bool { return safepoints[i] < safepoints[j] })
	t.Logf("time-to-safepoint over 50 stops: median %v, max %v", safepoints[25], safepoints[49])
}

// TestStopWhileWaiting stops a guest that sleeps in poll_oneoff, with
// the compiler and the interpreter: the stop unwinds it from the sleep.
// The sleep is an hour long, so a stop that waited for it would fail.
// The guest, moved to a fresh vessel, sleeps again (its whole hour: no
// host clock moves with it), is stopped there too, and is killed by
// Close. Stopped during the first of three short sleeps and let go on
// instead, it ends like an uninterrupted run.
func TestStopWhileWaiting(t *testing.T) {
	wls := workloads(t)
	for _, interp := range []bool{false, true} {
		t.Run(map[bool]string{false: "compiler", true: "interpreter"}[interp], func(t *testing.T) {
			stopsRunning(t, interp)
			ctx := context.Background()
			stop := func(v *vessel.Vessel) *snapshot.Snapshot {
				t.Helper()
				sctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				snap, err := v.Stop(sctx)
				if err != nil {
					t.Fatalf("stop while the guest sleeps: %v", err)
				}
				return snap
			}

			wl := wls["sleep"]
			wl.Args = []string{"3600000", "1"}
			var out syncBuffer
			v, err := vessel.Start(ctx, config(t, wl, &out, interp))
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close(ctx)
			waitLines(t, &out, 1)
			snap := stop(v)
			v.Close(ctx)
			var out2 syncBuffer
			v2 := move(t, snap, config(t, wl, &out2, interp))
			defer v2.Close(ctx)
			stop(v2)
			v2.Continue()
			if err := v2.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if code, _ := v2.Wait(ctx); code != vessel.KilledExitCode {
				t.Errorf("killed in its sleep, the guest exited %d, want %d", code, vessel.KilledExitCode)
			}
			if got := out.String() + out2.String(); got != "sleep 0\n" {
				t.Errorf("stdout %q: the guest did not stay asleep", got)
			}

			wl.Args = []string{"300", "3"}
			var out3 syncBuffer
			v3, err := vessel.Start(ctx, config(t, wl, &out3, interp))
			if err != nil {
				t.Fatal(err)
			}
			defer v3.Close(ctx)
			waitLines(t, &out3, 1)
			stop(v3)
			if got := out3.String(); got != "sleep 0\n" {
				t.Logf("the stop came after the first sleep: %q", got) // a slow machine
			}
			v3.Continue()
			code, err := v3.Wait(ctx)
			if err != nil || code != 0 {
				t.Fatalf("exit %d, %v", code, err)
			}
			if got, want := out3.String(), "sleep 0\nsleep 1\nsleep 2\nawake\n"; got != want {
				t.Errorf("stdout %q, want %q", got, want)
			}
		})
	}
}

// TestFreshPagesAfterStop stops a guest while it waits (so always
// before it grows memory), lets it go on in the same vessel or in a
// fresh one, and then has it grow memory the way Go's runtime does,
// taking the pages past its own break as fresh zero memory: the stop put
// its stack buffer there, and must have cleared it (issue 13, where the
// saved frames became a Go guest's heap metadata and the guest died with
// "grew heap, but no adequate free space found").
func TestFreshPagesAfterStop(t *testing.T) {
	wl := workloads(t)["brk"]
	wl.NeedsData = true
	for _, interp := range []bool{false, true} {
		for _, moved := range []bool{false, true} {
			name := map[bool]string{false: "continue", true: "move"}[moved] + map[bool]string{false: "", true: "/interpreter"}[interp]
			t.Run(name, func(t *testing.T) {
				stopsRunning(t, interp)
				ctx := context.Background()
				var out syncBuffer
				cfg := config(t, wl, &out, interp)
				v, err := vessel.Start(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer v.Close(ctx)
				waitLines(t, &out, 1)
				sctx, cancel := context.WithTimeout(ctx, time.Minute)
				snap, err := v.Stop(sctx)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				if moved {
					v.Close(ctx)
					cfg = config(t, wl, &out, interp)
					v = move(t, snap, cfg)
					defer v.Close(ctx)
				} else {
					v.Continue()
				}
				if err := os.WriteFile(filepath.Join(cfg.WASI.Preopens[0].HostDir, "go"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
				code, err := v.Wait(ctx)
				if err != nil {
					t.Fatal(err)
				}
				const want = "waiting\n16 fresh pages, all zero\n"
				if got := out.String(); code != 0 || got != want {
					t.Fatalf("exit %d, stdout %q; want exit 0, stdout %q", code, got, want)
				}
			})
		}
	}
}

// busy keeps every CPU but one spinning until stopped.
func busy() (stop func()) {
	var done atomic.Bool
	for i := 0; i < runtime.NumCPU(); i++ {
		go func() {
			for !done.Load() {
			}
		}()
	}
	return func() { done.Store(true) }
}

// TestDeepRecursionInterpreter runs the 50,000-frame workload under the
// interpreter, whose own limit is 2000 frames (see
// InterpreterMaxCallDepth).
func TestDeepRecursionInterpreter(t *testing.T) {
	wls := workloads(t)
	ctx := context.Background()
	var out syncBuffer
	v, err := vessel.Start(ctx, config(t, wls["deep"], &out, true))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close(ctx)
	if _, err := v.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	want, _, _ := wls["deep"].Golden()
	if out.String() != want {
		t.Errorf("stdout:\n got %q\nwant %q", out.String(), want)
	}
}
