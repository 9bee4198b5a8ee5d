package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/podctl/podctl/test/harness"
	"github.com/podctl/podctl/wasm/prepare"
	"github.com/podctl/podctl/wasm/snapshot"
	"github.com/podctl/podctl/wasm/vessel"
	"github.com/podctl/podctl/wasm/wasi"
)

// BenchmarkVessel measures, for each WASI workload (run it with
// -benchtime 1x; every figure is a median over several runs):
//
//   - plain: the unmodified module's run time with wazero's compiler and
//     podctl's WASI; prepared: the prepared module's, in a vessel (which
//     starts from its start module, see prepare.Prepared.Start); and
//     their ratio, the cost of the poll points and Asyncify (the summary
//     adds the geometric mean). A run is timed whole, from a new runtime
//     to the guest's exit (the module compiled, but decoded and
//     validated again: a prepared module is larger), and its execution
//     alone, from the guest's start (exec-overhead);
//   - safepoint: time-to-safepoint, from a stop request to the unwound
//     stack, over at least 50 stops spread over the run (p50, p99);
//   - snapshot: stopping the guest mid-run and encoding its snapshot
//     (capture included), and the snapshot's size without the module;
//   - restore: decoding that snapshot and resuming it in a fresh vessel,
//     on amd64 in-process, and on each other ISA through `podctl restore`
//     run by qemu-user (the whole command: emulated, so not comparable
//     with amd64's; the guest runs interpreted there, except on arm64).
func BenchmarkVessel(b *testing.B) {
	wls := benchWorkloads(b)
	cache := prepare.Cache{Dir: b.TempDir()}
	// Runs are timed with their module already compiled (by the first,
	// untimed-in-effect run: medians of 5), plain and prepared alike.
	compiled := wazero.NewCompilationCache()
	var rows []vbRow
	for _, name := range []string{"recurse", "heap", "files", "deep", "gowork"} {
		wl := wls[name]
		b.Run(name, func(b *testing.B) {
			module, err := os.ReadFile(wl.Path)
			if err != nil {
				b.Fatal(err)
			}
			p, err := cache.Prepare(context.Background(), module)
			if err != nil {
				b.Fatal(err)
			}
			row := vbRow{name: name}
			row.plain, row.plainExec = vbMedianRuns(5, func() vbRun { return vbRunPlain(b, wl, module, compiled) })
			row.prepared, row.preparedExec = vbMedianRuns(5, func() vbRun { return vbRunPrepared(b, wl, p, compiled) })
			row.p50, row.p99 = vbSafepoints(b, wl, p)
			snapFile := filepath.Join(b.TempDir(), name+".snap")
			row.snapshot, row.size, row.restore = vbSnapshotRestore(b, wl, p, snapFile)
			row.foreign = vbForeignRestores(b, snapFile, module)
			b.ReportMetric(row.prepared/row.plain, "overhead-x")
			b.ReportMetric(row.preparedExec/row.plainExec, "exec-overhead-x")
			b.ReportMetric(row.p99, "safepoint-p99-ms")
			b.ReportMetric(row.snapshot, "snapshot-ms")
			b.ReportMetric(float64(row.size)/1024, "snapshot-KiB")
			b.ReportMetric(row.restore, "restore-ms")
			b.ReportMetric(0, "ns/op")
			rows = append(rows, row)
		})
	}
	if len(rows) > 1 {
		b.Logf("\n%s", vbTable(rows))
	}
}

type vbRow struct {
	name                      string
	plain, prepared, p50, p99 float64
	plainExec, preparedExec   float64
	snapshot, restore         float64
	size                      int
	foreign                   map[string]float64
}

func benchWorkloads(b *testing.B) map[string]harness.WasmWorkload {
	dir := b.TempDir()
	wls, err := harness.BuildWasmWorkloads(dir)
	harness.SkipOrFail(b, err)
	return wls
}

func vbMedian(n int, f func() time.Duration) float64 {
	var v []float64
	for i := 0; i < n; i++ {
		v = append(v, float64(f().Microseconds())/1000)
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

func vbWASI(b *testing.B, wl harness.WasmWorkload, out *bytes.Buffer) wasi.Config {
	cfg := wasi.Config{Args: append([]string{wl.Name}, wl.Args...), Stdout: out}
	if wl.NeedsData {
		cfg.Preopens = []wasi.PreopenDir{{GuestPath: harness.WasmDataDir, HostDir: b.TempDir()}}
	}
	return cfg
}

// vbRunPlain runs the unmodified module to its end: wazero's compiler,
// podctl's WASI, memory allocator and native stack, nothing of podctl's
// instrumentation.
func vbRunPlain(b *testing.B, wl harness.WasmWorkload, module []byte, cc wazero.CompilationCache) vbRun {
	ctx := context.Background()
	var out bytes.Buffer
	sysIf, err := wasi.New(vbWASI(b, wl, &out))
	if err != nil {
		b.Fatal(err)
	}
	defer sysIf.Close()
	start := time.Now()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cc))
	defer rt.Close(ctx)
	if _, err := sysIf.Instantiate(ctx, rt); err != nil {
		b.Fatal(err)
	}
	compiled, err := rt.CompileModule(ctx, module)
	if err != nil {
		b.Fatal(err)
	}
	mod, err := rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, vessel.MemoryAllocator()), compiled, wazero.NewModuleConfig().WithStartFunctions())
	if err != nil {
		b.Fatal(err)
	}
	entry := mod.ExportedFunction("_start")
	release, _ := vessel.UseNativeStack(entry) // the stack a vessel's guest gets
	defer release()
	running := time.Now()
	_, err = entry.Call(ctx)
	end := time.Now()
	if exit, ok := err.(*sys.ExitError); err != nil && (!ok || int(exit.ExitCode()) != wl.WantExit) {
		b.Fatalf("plain %s: %v", wl.Name, err)
	}
	return vbRun{total: end.Sub(start), exec: end.Sub(running)}
}

// vbRun is how long a run took: from the runtime's creation (the module
// compiled, but decoded and validated again) to the guest's exit, and
// the guest's execution alone.
type vbRun struct{ total, exec time.Duration }

// vbMedianRuns returns the median total and execution times of n runs,
// in ms.
func vbMedianRuns(n int, f func() vbRun) (total, exec float64) {
	var totals, execs []float64
	for i := 0; i < n; i++ {
		r := f()
		totals = append(totals, float64(r.total.Microseconds())/1000)
		execs = append(execs, float64(r.exec.Microseconds())/1000)
	}
	sort.Float64s(totals)
	sort.Float64s(execs)
	return totals[n/2], execs[n/2]
}

// vbRunPrepared runs the prepared module to its end in a vessel.
// Start returns once the module is instantiated and the guest started:
// the execution time is from then.
func vbRunPrepared(b *testing.B, wl harness.WasmWorkload, p *prepare.Prepared, cc wazero.CompilationCache) vbRun {
	ctx := context.Background()
	var out bytes.Buffer
	start := time.Now()
	v, err := vessel.Start(ctx, vessel.Config{Module: p, WASI: vbWASI(b, wl, &out), CompilationCache: cc})
	if err != nil {
		b.Fatal(err)
	}
	running := time.Now()
	defer v.Close(ctx)
	code, err := v.Wait(ctx)
	end := time.Now()
	if err != nil || code != wl.WantExit {
		b.Fatalf("prepared %s: exit %d, %v", wl.Name, code, err)
	}
	return vbRun{total: end.Sub(start), exec: end.Sub(running)}
}

// vbSafepoints stops the workload every 2 ms until 50 stops were made
// (restarting it as often as needed) and returns the median and 99th
// percentile time-to-safepoint, in ms.
//
// The vessels run the prepared module itself, not its start module: a
// vessel started from the start module moves to the prepared module at
// its first Continue and, while that compiles, serves stops without
// running the guest at all, which would measure nothing. Both modules
// have the same poll points and the same code outside the twins.
func vbSafepoints(b *testing.B, wl harness.WasmWorkload, p *prepare.Prepared) (p50, p99 float64) {
	ctx := context.Background()
	full := *p
	full.Start = nil
	var samples []float64
	for len(samples) < 50 {
		var out bytes.Buffer
		v, err := vessel.Start(ctx, vessel.Config{Module: &full, WASI: vbWASI(b, wl, &out)})
		if err != nil {
			b.Fatal(err)
		}
		for len(samples) < 50 {
			time.Sleep(2 * time.Millisecond)
			if _, err := v.Stop(ctx); err != nil {
				break // exited
			}
			samples = append(samples, float64(v.LastSafepoint().Microseconds())/1000)
			v.Continue()
		}
		v.Close(ctx)
	}
	sort.Float64s(samples)
	return samples[len(samples)/2], samples[len(samples)*99/100]
}

// vbSnapshotRestore stops the workload a third into its output, encodes
// its snapshot into file (module included, for the foreign restores) and
// resumes it in a fresh vessel. It returns the stop+encode time, the
// snapshot's size without the module, and decode+resume time (medians of
// 5, in ms).
func vbSnapshotRestore(b *testing.B, wl harness.WasmWorkload, p *prepare.Prepared, file string) (snapMS float64, size int, restoreMS float64) {
	ctx := context.Background()
	want, _, err := wl.Golden()
	if err != nil {
		b.Fatal(err)
	}
	third := strings.Count(want, "\n") / 3
	var snaps, restores []float64
	for i := 0; i < 5; i++ {
		var out bytes.Buffer
		cfg := vessel.Config{Module: p, WASI: vbWASI(b, wl, &out), Interpreter: true}
		v, err := vessel.Start(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		for strings.Count(out.String(), "\n") < third {
			time.Sleep(time.Millisecond)
		}
		start := time.Now()
		snap, err := v.Stop(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var enc bytes.Buffer
		if err := snapshot.Encode(&enc, snap); err != nil {
			b.Fatal(err)
		}
		snaps = append(snaps, float64(time.Since(start).Microseconds())/1000)
		size = enc.Len()
		v.Close(ctx)
		if i == 0 {
			withModule := *snap
			withModule.Module = p.Bytes
			withModule.Meta = map[string]string{"podctl.pod.name": "bench"}
			var full bytes.Buffer
			if err := snapshot.Encode(&full, &withModule); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(file, full.Bytes(), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		start = time.Now()
		moved, err := snapshot.Decode(&enc, snapshot.DefaultLimits())
		if err != nil {
			b.Fatal(err)
		}
		var out2 bytes.Buffer
		cfg2 := vessel.Config{Module: p, WASI: vbWASI(b, wl, &out2)}
		v2, err := vessel.Resume(ctx, cfg2, moved)
		if err != nil {
			b.Fatal(err)
		}
		restores = append(restores, float64(time.Since(start).Microseconds())/1000)
		v2.Close(ctx)
	}
	sort.Float64s(snaps)
	sort.Float64s(restores)
	return snaps[2], size, restores[2]
}

// vbForeignRestores restores file with podctl built for each other ISA,
// under qemu-user, and returns the command's total restore time (ms).
func vbForeignRestores(b *testing.B, file string, module []byte) map[string]float64 {
	res := map[string]float64{}
	dir := b.TempDir()
	for _, isa := range harness.ForeignISAs {
		launcher, err := harness.BuildForeign(dir, isa)
		if harness.Missing(err) {
			b.Logf("no restore on %s: %v", isa.GOARCH, err)
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		root := b.TempDir()
		out, err := exec.Command(launcher, "--root", root, "restore", "--json", file).Output()
		if err != nil {
			b.Fatalf("%s restore: %v", isa.GOARCH, err)
		}
		var r struct {
			Total time.Duration `json:"totalNs"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			b.Fatal(err)
		}
		res[isa.GOARCH] = float64(r.Total.Microseconds()) / 1000
		exec.Command(launcher, "--root", root, "rm", "-f", "bench").Run()
	}
	return res
}

func vbTable(rows []vbRow) string {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tplain-ms\tprepared-ms\toverhead\texec-overhead\tsafepoint-p50\tp99\tsnapshot-ms\tKiB\trestore-ms\tarm64*\ts390x*\triscv64*\tppc64le*\t")
	logSum, logExec := 0.0, 0.0
	for _, r := range rows {
		ratio, exec := r.prepared/r.plain, r.preparedExec/r.plainExec
		logSum += math.Log(ratio)
		logExec += math.Log(exec)
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.2fx\t%.2fx\t%.2f\t%.2f\t%.1f\t%.1f\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", r.name, r.plain, r.prepared, ratio, exec,
			r.p50, r.p99, r.snapshot, float64(r.size)/1024, r.restore,
			r.foreign["arm64"], r.foreign["s390x"], r.foreign["riscv64"], r.foreign["ppc64le"])
	}
	tw.Flush()
	fmt.Fprintf(&buf, "geometric mean overhead: %.2fx whole run, %.2fx execution (* podctl restore under qemu-user, emulated, ms)\n",
		math.Exp(logSum/float64(len(rows))), math.Exp(logExec/float64(len(rows))))
	return buf.String()
}
