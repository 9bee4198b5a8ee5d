// Package wasmworkloads_test builds the WebAssembly vessel workloads and
// checks that each one is what the migration tests need: deterministic,
// with the documented exit code, enough progress lines, and (files,
// gowork) the expected /data contents. It runs them under wazero, twice
// each, with a fresh /data each time and real clocks and randomness, so
// that any dependence on them shows.
package wasmworkloads_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
	_ "unsafe" // for go:linkname

	"github.com/podctl/podctl/test/harness"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

var (
	show   = flag.Bool("wasm.show", false, "log each workload's output, with the time of each line")
	update = flag.Bool("wasm.update", false, "rewrite the golden files in testdata/golden")
	interp = flag.Bool("wasm.interp", false, "use wazero's interpreter even where its compiler exists (30-70x slower)")
)

// interpreterCallStackCeiling is the most wasm frames wazero's interpreter
// allows (2000 by default; an int, so -ldflags -X cannot set it). deep
// recurses 50,000 frames deep: under the interpreter (the only engine on
// s390x, riscv64 and ppc64le) it fails with "stack overflow" unless this
// is raised. Each interpreted frame also takes about 7.5 KiB of Go stack:
// 50,000 frames take about 400 MB, of Go's 1 GB maximum.
//
//go:linkname interpreterCallStackCeiling github.com/tetratelabs/wazero/internal/engine/interpreter.callStackCeiling
var interpreterCallStackCeiling int

func init() {
	interpreterCallStackCeiling = 100000
}

type run struct {
	stdout, stderr string
	exit           int
	elapsed        time.Duration
	pages          uint32
	data           string
	// gap is the longest time without a line of output (from the start,
	// between lines, to the end).
	gap time.Duration
	// timed is stdout with the time of each line.
	timed string
	// dir is the host directory mounted as /data.
	dir string
	// cpu is the CPU time (seconds) of the thread running the guest.
	cpu float64
}

// lineTimer is stdout, noting the longest time between two newlines.
type lineTimer struct {
	bytes.Buffer
	last  time.Time
	gap   time.Duration
	times []time.Duration // since the start, of each write ending a line
	start time.Time
}

func (w *lineTimer) Write(p []byte) (int, error) {
	if bytes.IndexByte(p, '\n') >= 0 {
		w.tick()
	}
	return w.Buffer.Write(p)
}

func (w *lineTimer) tick() {
	now := time.Now()
	if d := now.Sub(w.last); d > w.gap {
		w.gap = d
	}
	w.last = now
	w.times = append(w.times, now.Sub(w.start))
}

func runWorkload(t *testing.T, ctx context.Context, rt wazero.Runtime, mod wazero.CompiledModule, w harness.WasmWorkload) run {
	t.Helper()
	var stdout lineTimer
	var stderr bytes.Buffer
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithArgs(append([]string{w.Name}, w.Args...)...).
		WithStdout(&stdout).
		WithStderr(&stderr).
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(rand.Reader).
		WithStartFunctions()
	data := t.TempDir()
	if w.NeedsData {
		cfg = cfg.WithFSConfig(wazero.NewFSConfig().WithDirMount(data, harness.WasmDataDir))
	}
	inst, err := rt.InstantiateModule(ctx, mod, cfg)
	if err != nil {
		t.Fatalf("%s: instantiate: %v", w.Name, err)
	}
	// The guest runs on this goroutine: on this thread, once locked.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu := threadCPU()
	start := time.Now()
	stdout.last, stdout.start = start, start
	_, err = inst.ExportedFunction("_start").Call(ctx)
	stdout.tick()
	cpu = threadCPU() - cpu
	r := run{elapsed: time.Since(start), stdout: stdout.String(), stderr: stderr.String(), gap: stdout.gap, dir: data, cpu: cpu}
	for i, line := range strings.SplitAfter(r.stdout, "\n") {
		if i < len(stdout.times) && line != "" {
			r.timed += fmt.Sprintf("%7.1fms %s", stdout.times[i].Seconds()*1000, line)
		}
	}
	var exit *sys.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.exit = int(exit.ExitCode())
	default:
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", w.Name, err, r.stdout, r.stderr)
	}
	if m := inst.Memory(); m != nil {
		r.pages = m.Size() / 65536
	}
	inst.Close(ctx)
	if r.data, err = harness.WasmTree(data); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestWasmWorkloads(t *testing.T) {
	dir := t.TempDir()
	ws, err := harness.BuildWasmWorkloads(dir)
	harness.SkipOrFail(t, err)
	names := make([]string, 0, len(ws))
	for n := range ws {
		names = append(names, n)
	}
	sort.Strings(names)
	ctx := context.Background()
	for _, name := range names {
		w := ws[name]
		t.Run(name, func(t *testing.T) {
			rc := wazero.NewRuntimeConfig() // the compiler where there is one
			if *interp {
				rc = wazero.NewRuntimeConfigInterpreter()
			}
			rt := wazero.NewRuntimeWithConfig(ctx, rc)
			defer rt.Close(ctx)
			wasi_snapshot_preview1.MustInstantiate(ctx, rt)
			bin, err := os.ReadFile(w.Path)
			if err != nil {
				t.Fatal(err)
			}
			mod, err := rt.CompileModule(ctx, bin)
			if err != nil {
				t.Fatal(err)
			}
			a := runWorkload(t, ctx, rt, mod, w)
			b := runWorkload(t, ctx, rt, mod, w)
			t.Logf("%s: %d bytes of module; runs took %v and %v (CPU %.0f ms and %.0f ms); %d bytes of stdout, %d lines, at most %.0f%% of the run between two; exit %d; %d pages of memory (%.1f MiB)",
				name, len(bin), a.elapsed.Round(time.Millisecond), b.elapsed.Round(time.Millisecond), a.cpu*1000, b.cpu*1000,
				len(a.stdout), strings.Count(a.stdout, "\n"), 100*a.gap.Seconds()/a.elapsed.Seconds(),
				a.exit, a.pages, float64(a.pages)/16)
			if *show {
				t.Logf("stdout, with the time of each line:\n%s", a.timed)
			}
			if a.stdout != b.stdout {
				t.Errorf("stdout differs between two runs:\n%s", diff(a.stdout, b.stdout))
			}
			if a.stderr != "" || b.stderr != "" {
				t.Errorf("stderr: %q, %q", a.stderr, b.stderr)
			}
			if a.exit != w.WantExit || b.exit != w.WantExit {
				t.Errorf("exit codes %d, %d; want %d", a.exit, b.exit, w.WantExit)
			}
			if a.data != b.data {
				t.Errorf("/data differs between two runs:\n%s", diff(a.data, b.data))
			}
			if *update {
				writeGolden(t, w, a)
			}
			stdout, data, err := w.Golden()
			if err != nil {
				t.Fatalf("%v (run with -wasm.update to make it)", err)
			}
			if a.stdout != stdout {
				t.Errorf("stdout is not testdata/golden/%s.stdout:\n%s", name, diff(a.stdout, stdout))
			}
			if a.data != data {
				t.Errorf("/data is not testdata/golden/%s.data:\n%s", name, diff(a.data, data))
			}
			if name == "files" {
				checkFiles(t, a)
			}
			if n := strings.Count(a.stdout, "\n"); n < 20 {
				t.Errorf("%d lines of output, want at least 20", n)
			}
			if !strings.HasSuffix(a.stdout, "\n") {
				t.Errorf("output does not end with a newline")
			}
		})
	}
}

// checkFiles checks what files.c leaves in /data beyond its golden
// listing, so that a failure says what went wrong: log.txt holds one line
// per step in order (appends land at the end even after a seek to 0),
// out/ holds the files renamed and none of those removed, and
// summary.txt agrees with the digest printed.
func checkFiles(t *testing.T, r run) {
	t.Helper()
	log, err := os.ReadFile(filepath.Join(r.dir, "log.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(log), "\n"), "\n")
	if len(lines) != 40 {
		t.Errorf("log.txt has %d lines, want 40", len(lines))
	}
	for i, l := range lines {
		if want := fmt.Sprintf("step %02d ", i); !strings.HasPrefix(l, want) {
			t.Errorf("log.txt line %d is %q, want it to start with %q", i+1, l, want)
		}
	}
	out, err := os.ReadDir(filepath.Join(r.dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range out {
		names = append(names, e.Name())
	}
	if got, want := strings.Join(names, " "), "kept-04.txt kept-14.txt kept-24.txt kept-34.txt"; got != want {
		t.Errorf("out/ holds %s, want %s", got, want)
	}
	for _, f := range []string{"input.bin", "table.bin"} {
		if fi, err := os.Stat(filepath.Join(r.dir, f)); err != nil {
			t.Error(err)
		} else if want := map[string]int64{"input.bin": 40*3*4096 + 1234, "table.bin": 4096 * 16}[f]; fi.Size() != want {
			t.Errorf("%s has %d bytes, want %d", f, fi.Size(), want)
		}
	}
	summary, err := os.ReadFile(filepath.Join(r.dir, "summary.txt"))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(r.stdout, "files: digest=")
	if i < 0 {
		t.Fatalf("no digest in output")
	}
	digest := strings.TrimSpace(strings.TrimPrefix(r.stdout[i:], "files: digest="))
	if !strings.Contains(string(summary), "digest "+digest+"\n") {
		t.Errorf("summary.txt does not hold the digest printed (%s):\n%s", digest, summary)
	}
}

func writeGolden(t *testing.T, w harness.WasmWorkload, r run) {
	dir := filepath.Join(harness.WasmWorkloadsDir(), "testdata", "golden")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, w.Name+".stdout"), []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	if w.NeedsData {
		if err := os.WriteFile(filepath.Join(dir, w.Name+".data"), []byte(r.data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// diff shows the first line where a and b differ.
func diff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(la) || i < len(lb); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: %q vs %q", i+1, x, y)
		}
	}
	return "(same lines)"
}
