package prepare

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/podctl/podctl/internal/testseed"
)

// preparedModules holds the modules prepareModule made in this test
// binary, by the SHA-256 of their source, so that go test -count=N
// prepares each only once (Asyncify takes some 30 s for a Go guest).
var preparedModules sync.Map

// prepareModule instruments a module and runs Asyncify on it, once per
// test binary.
func prepareModule(t testing.TB, module []byte) []byte {
	t.Helper()
	key := sha256.Sum256(module)
	if p, ok := preparedModules.Load(key); ok {
		return p.([]byte)
	}
	wasmOpt := wasmOptPath(t)
	start := time.Now()
	instrumented, err := Instrument(module)
	if err != nil {
		t.Fatal(err)
	}
	instrumentTime := time.Since(start)
	out, err := Asyncify(context.Background(), wasmOpt, instrumented)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prepared: %d -> %d -> %d bytes; instrument %v, asyncify %v",
		len(module), len(instrumented), len(out), instrumentTime.Round(time.Millisecond), (time.Since(start) - instrumentTime).Round(time.Millisecond))
	preparedModules.Store(key, out)
	return out
}

// noGC turns the garbage collector off for the rest of the test. A stop
// the world waits for every goroutine to reach a safe point, and one
// running guest code does not until the guest calls the host: a
// collection started while a guest spins would wait for it forever, and
// so would the goroutine that sets the flag.
func noGC(t testing.TB) {
	runtime.GC()
	old := debug.SetGCPercent(-1)
	t.Cleanup(func() { debug.SetGCPercent(old) })
}

// spareP gives the test a second P while it runs, when it has only one
// (go test -cpu 1): a guest's goroutine holds its P for as long as it
// runs compiled code, which Go never preempts, so the timer or goroutine
// that raises the flag needs another, as a vessel's control socket does.
func spareP(t testing.TB) {
	if runtime.GOMAXPROCS(0) >= 2 {
		return
	}
	old := runtime.GOMAXPROCS(2)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
}

// busy keeps a CPU busy until the test ends.
func busy(t testing.TB) {
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		x := uint64(1)
		for !stop.Load() {
			for i := 0; i < 1000; i++ {
				x = x*6364136223846793005 + 1442695040888963407
			}
		}
		_ = x
	}()
	t.Cleanup(func() { stop.Store(true); <-done })
}

// TestTimeToPoll sets the flag of a prepared guest spinning in a loop
// without calls, from another goroutine, and checks that the guest calls
// the poll function soon after, 50 times, with and without another
// goroutine keeping a CPU busy.
//
// Nothing here waits on a Go timer while the guest runs: timers live with
// a P, the guest holds its P without ever entering the scheduler, and a
// timer of that P only fires when another P is idle enough to steal it,
// which a busy goroutine prevents. The test goroutine itself spins (and
// yields) until it is time to set the flag.
func TestTimeToPoll(t *testing.T) {
	prepared := prepareModule(t, buildC(t, "spin", "-O2"))
	ctx := context.Background()
	cache := wazero.NewCompilationCache()
	t.Cleanup(func() { cache.Close(ctx) })
	// The watchdog closes a guest that does not poll; closing only
	// interrupts guest code compiled with these checks.
	cfg := runtimeConfig(cache).WithCloseOnContextDone(true)
	const bound = time.Second
	for _, load := range []bool{false, true} {
		name := "idle"
		if load {
			name = "loaded"
		}
		t.Run(name, func(t *testing.T) {
			noGC(t)
			spareP(t)
			if load {
				busy(t)
			}
			var worst, total time.Duration
			const rounds = 50
			for i := 0; i < rounds; i++ {
				h := newHost(ctx, t, cfg, prepared)
				checkExports(t, h)
				s := &stopper{bufSize: 1 << 16}
				var setAt, polledAt atomic.Int64
				h.onPoll = func(ctx context.Context, h *host) {
					polledAt.Store(time.Now().UnixNano())
					s.poll(ctx, h)
				}
				done := make(chan struct{})
				var o outcome
				var err error
				go func() {
					defer close(done)
					o, err = h.run(ctx)
				}()
				// Let the guest spin a little, then set the flag.
				spinUntil(time.Now().Add(time.Duration(1+rand.Intn(5))*time.Millisecond), nil)
				setAt.Store(time.Now().UnixNano())
				h.flag.Raise()
				if !spinUntil(time.Now().Add(bound), func() bool { return polledAt.Load() != 0 }) {
					h.mod.CloseWithExitCode(ctx, 1)
					<-done
					t.Fatalf("round %d: the guest did not poll within %v of the flag being set", i, bound)
				}
				<-done
				if err != nil || s.err != nil {
					t.Fatalf("round %d: run: %v, poll: %v", i, err, s.err)
				}
				if !o.unwound || s.polls != 1 {
					t.Fatalf("round %d: unwound %v after %d polls, want an unwind after 1", i, o.unwound, s.polls)
				}
				latency := time.Duration(polledAt.Load() - setAt.Load())
				worst = max(worst, latency)
				total += latency
			}
			t.Logf("time to poll over %d rounds: mean %v, worst %v", rounds, total/rounds, worst)
		})
	}
}

// spinUntil yields until deadline or until cond (when not nil) holds,
// and reports whether cond held. It uses no timer.
func spinUntil(deadline time.Time, cond func() bool) bool {
	for time.Now().Before(deadline) {
		if cond != nil && cond() {
			return true
		}
		runtime.Gosched()
	}
	return cond != nil && cond()
}

// migration is the record of a guest run to completion through a series
// of stops, each resumed in a fresh runtime.
type migration struct {
	outcome
	stops    int
	maxStack uint32 // the largest unwound call stack, in bytes
}

// migrate runs a prepared module to completion, stopping it about every
// interval (a random fraction of it, from rng) by raising its flag from
// a timer, and resuming each stop from a snapshot of its memory and
// globals in a fresh wazero runtime, as another host would. The first
// leg runs start, the prepared module's start module, when it is not nil,
// as a fresh vessel does.
func migrate(ctx context.Context, t *testing.T, cache wazero.CompilationCache, prepared, start []byte, interval time.Duration, rng *rand.Rand, args ...string) migration {
	t.Helper()
	globals := mutableGlobalExports(t, prepared)
	var (
		st             *vesselState
		result         migration
		stdout, stderr strings.Builder
	)
	for leg := 0; ; leg++ {
		module := prepared
		if leg == 0 && start != nil {
			module = start
		}
		h := newHost(ctx, t, runtimeConfig(cache), module, args...)
		if leg == 0 {
			checkExports(t, h)
		}
		// The timer that raises the flag starts when the guest runs on:
		// at once on the first leg, once the rewind is over on the
		// others. There is no other goroutine to keep the other P busy:
		// the timer fires even when it lives with the guest's P.
		var timer *time.Timer
		startTimer := func() {
			timer = time.AfterFunc(time.Duration(rng.Int63n(int64(interval))+1), h.flag.Raise)
		}
		s := &stopper{bufSize: 1 << 20, globals: globals}
		h.onPoll = s.poll
		if st == nil {
			startTimer()
		} else {
			if err := restore(ctx, h, st); err != nil {
				t.Fatalf("leg %d: restore: %v", leg, err)
			}
			s.resumed(st)
			s.rewound = startTimer
		}
		o, err := h.run(ctx)
		if timer != nil {
			timer.Stop()
		}
		if err == nil {
			err = s.err
		}
		if err != nil {
			t.Fatalf("leg %d: %v\nstderr: %s", leg, err, h.stderr.String())
		}
		stdout.WriteString(o.stdout)
		stderr.WriteString(o.stderr)
		if !o.unwound {
			result.outcome = o
			result.stdout, result.stderr = stdout.String(), stderr.String()
			return result
		}
		if st, err = s.snapshot(ctx, h); err != nil {
			t.Fatalf("leg %d: %v", leg, err)
		}
		cur := binary.LittleEndian.Uint32(st.memory[st.dataAddr:])
		result.maxStack = max(result.maxStack, cur-(st.dataAddr+8))
		result.stops++
		h.close(ctx)
		runtime.GC() // no guest runs: a stop of the world is safe
	}
}

// checkMigration runs a module uninterrupted and prepared and stopped and
// moved many times, and fails the test unless both print the same and
// exit the same way.
func checkMigration(t *testing.T, original []byte, interval time.Duration, args ...string) migration {
	prepared := prepareModule(t, original)
	startModule, err := stripRewind(prepared)
	if err != nil && !errors.Is(err, errNoSplit) {
		t.Fatal(err)
	}
	ctx := context.Background()
	cache := wazero.NewCompilationCache()
	t.Cleanup(func() { cache.Close(ctx) })
	want, _ := runOnce(ctx, t, cache, original, args...)
	noGC(t)
	spareP(t)
	// A seed fixes the intervals between stops, not the instructions
	// they land on: the guest runs on while a timer counts them down.
	seed := testseed.Seed(t)
	start := time.Now()
	got := migrate(ctx, t, cache, prepared, startModule, interval, rand.New(rand.NewSource(seed)), args...)
	if got.stdout != want.stdout || got.exitCode != want.exitCode {
		t.Fatalf("after %d stops the output differs (seed %d):\n got exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d, stdout:\n%s",
			got.stops, seed, got.exitCode, firstLines(got.stdout, 30), firstLines(got.stderr, 60), want.exitCode, firstLines(want.stdout, 30))
	}
	if got.stops < 3 {
		t.Fatalf("only %d stops: the test proves little", got.stops)
	}
	t.Logf("identical output (%d bytes, exit code %d) after %d stops and moves in %v; largest unwound stack %d bytes",
		len(got.stdout), got.exitCode, got.stops, time.Since(start).Round(time.Millisecond), got.maxStack)
	return got
}

// TestMigrateC stops a C guest (loops, deep and mutual recursion, calls
// through function pointers) at random poll points, and resumes it each
// time in a fresh runtime from its memory and globals alone.
func TestMigrateC(t *testing.T) {
	original := buildC(t, "guest", "-O2")
	t.Run("all", func(t *testing.T) {
		checkMigration(t, original, 40*time.Millisecond, "all", "3")
	})
	// Most of the time of this one is spent 20000 calls deep.
	t.Run("deep", func(t *testing.T) {
		got := checkMigration(t, original, 5*time.Millisecond, "deepstop", "3")
		// 20000 frames of deep() take far more than this.
		if got.maxStack < 100_000 {
			t.Errorf("the largest unwound stack is %d bytes: no stop found deep() deep", got.maxStack)
		}
	})
}

// TestMigrateGo does the same with a Go wasip1 guest (goroutines,
// channels, maps, closures).
func TestMigrateGo(t *testing.T) {
	checkMigration(t, buildGo(t), 40*time.Millisecond, "all", "1")
}

func TestAsyncifyErrors(t *testing.T) {
	module := buildC(t, "spin", "-O2")
	if _, err := Asyncify(context.Background(), wasmOptPath(t), module); err == nil || !strings.Contains(err.Error(), "not instrumented") {
		t.Fatalf("Asyncify of a module without the poll import: %v", err)
	}
	instrumented, err := Instrument(module)
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "wasm-opt")
	if _, err := Asyncify(context.Background(), missing, instrumented); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Asyncify with a missing wasm-opt: %v", err)
	}
}

func TestModuleFeatures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		module func(testing.TB) []byte
		want   []string
	}{
		// Go writes no target_features section: its code says what it
		// needs.
		{"go", buildGo, []string{"bulk-memory", "nontrapping-float-to-int", "sign-ext"}},
		// clang 14 targets the MVP (and mutable globals) by default, and
		// then writes no target_features section.
		{"c", func(t testing.TB) []byte { return buildC(t, "guest", "-O0") }, nil},
		// With more, it lists them in target_features, whether the code
		// uses them or not (guest.c converts no float to an integer).
		{"c with features", func(t testing.TB) []byte {
			return buildC(t, "guest", "-O2", "-mbulk-memory", "-mnontrapping-fptoint")
		}, []string{"bulk-memory", "nontrapping-float-to-int"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			module := tc.module(t)
			got, err := moduleFeatures(module, decode(t, module))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("features %v, want %v", got, tc.want)
			}
		})
	}
}

// TestAsyncifyKeepsNames checks that function names survive wasm-opt, for
// the stack traces of guests that trap.
func TestAsyncifyKeepsNames(t *testing.T) {
	// clang only runs wasm-opt, which drops names, when optimizing.
	prepared := prepareModule(t, buildC(t, "guest", "-O0"))
	m := decode(t, prepared)
	if m.NameSection == nil {
		t.Fatal("the prepared module has no name section")
	}
	found := make(map[string]bool)
	for _, n := range m.NameSection.FunctionNames {
		found[n.Name] = true
	}
	for _, name := range []string{"deep", "apply", "asyncify_start_unwind"} {
		if !found[name] {
			t.Errorf("no function named %q in the prepared module", name)
		}
	}
}
