package compare

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/podctl/podctl/internal/human"
)

// Metrics a report compares against the baseline: smaller is better for
// each (a time or a size).
var comparedMetrics = []string{"checkpoint-ms", "restore-ms", "image-bytes"}

// pathDescriptions say in a line what each path is, for the report.
var pathDescriptions = map[string]string{
	PathNative:         "the native binary on the host, uninterrupted (run time only)",
	PathWasmPlain:      "the Wasm build under stock wazero and its WASI, uninterrupted (run time only)",
	PathWasmPrepared:   "the prepared module as a vessel runs it (podctl's WASI), uninterrupted (run time only)",
	Baseline:           "the native binary as a session on the host, `criu dump -t PID` and `criu restore -d` with CRIU's default options",
	PathPodctl:         "the native binary in a pod, `podctl checkpoint` and `podctl restore` (archive, checksums and fsync included)",
	PathPodman:         "the native binary in a Podman container (runc, no network), `podman container checkpoint` and `restore`",
	PathVesselCRIU:     "the Wasm build as a housed vessel pod, `podctl checkpoint` and `restore` (CRIU)",
	PathVesselSnapshot: "the same vessel, `podctl checkpoint --portable` and `podctl restore` of its snapshot",
}

// describe says what path is.
func describe(path string) string {
	if d, ok := pathDescriptions[path]; ok {
		return d
	}
	if Migrating(path) {
		return fmt.Sprintf("the pod of %s migrated mid-run to the --to dock with `podctl migrate`, finishing there (its output read and the pod removed by the migration's session)", strings.TrimPrefix(path, pathMigrate))
	}
	if Emulated(path) {
		return fmt.Sprintf("the portable snapshot restored by podctl for %s under qemu-user (emulated: its times measure the emulator, its checksum the result)", strings.TrimPrefix(path, pathSnapshotOn))
	}
	return path
}

// label is path as the report's tables name it.
func label(path string) string {
	if Emulated(path) {
		return path + " (emulated)"
	}
	return path
}

// WriteReport writes report.md: the machine and the paths, a table per
// workload (each path's metrics as median and min–max), each path's
// ratio to baseline per compared metric, the prepared module's run-time
// overhead, a reading of the ratios generated from the numbers, and the
// targets of the comparison, met or not.
func WriteReport(w io.Writer, r *Results, baseline string) error {
	var b strings.Builder
	m, runs := r.Machine, r.Runs
	summary := Summarize(runs)
	workloads, paths := order(runs)
	fmt.Fprintf(&b, "# podctl compare\n\n")
	fmt.Fprintf(&b, "Machine: %s, %d cores, %s/%s, kernel %s, CRIU %s, load average %.2f at the start.\n",
		oneLine(m.CPU), m.Cores, m.OS, m.Arch, oneLine(m.Kernel), oneLine(m.CRIU), m.LoadAverage)
	fmt.Fprintf(&b, "Size %s, %d runs of each path, checkpoints at %g of the uninterrupted run. ", r.Options.Size, r.Options.Runs, r.Options.CheckpointAt)
	fmt.Fprintf(&b, "Each figure is the median of the runs, with the minimum and maximum in brackets. ")
	fmt.Fprintf(&b, "Times are whole commands; image-bytes is what the path leaves on disk (podctl's archive is compressed, CRIU's images are not), image-zstd-bytes the same compressed with zstd; a portable snapshot holds its prepared module (module-bytes), which CRIU's images leave out, as they leave out the executable.\n\n")
	for _, p := range paths {
		fmt.Fprintf(&b, "- **%s**: %s.\n", label(p), describe(p))
	}
	if !r.Podman.OK && r.Podman.Why != "" {
		fmt.Fprintf(&b, "- **%s**: not measured: %s.\n", PathPodman, r.Podman.Why)
	}
	b.WriteString("\n")
	local, migrations := splitPaths(paths)
	for _, wl := range workloads {
		fmt.Fprintf(&b, "## %s\n\n", wl)
		all := metricNames(summary, wl, local)
		own, criu := splitMetrics(all)
		writeTable(&b, summary, wl, local, own)
		if len(criu) > 0 {
			fmt.Fprintf(&b, "CRIU's own statistics (stats-dump, stats-restore):\n\n")
			writeTable(&b, summary, wl, local, criu)
		}
		if len(migrations) > 0 {
			fmt.Fprintf(&b, "Migrations to %s (migrate-ms is the whole `podctl migrate`; downtime-ms as it reports it; dock-restore-ms the dock's restore; sent-bytes what crossed the network):\n\n", r.Options.To)
			writeTable(&b, summary, wl, migrations, metricNames(summary, wl, migrations))
		}
	}
	if missed := r.Missed(); len(missed) > 0 {
		fmt.Fprintf(&b, "Runs without measures (the workload ended before the path's checkpoint command stopped it; a larger size gives slow commands the time):\n\n")
		for _, m := range missed {
			fmt.Fprintf(&b, "- %s\n", m)
		}
		b.WriteString("\n")
	}
	compared := comparable(paths, baseline)
	fmt.Fprintf(&b, "## Ratios to %s\n\nHow many times faster or smaller than %s each path is (its median to %s's): above 1 is better, below 1 worse.\n\n", baseline, baseline, baseline)
	fmt.Fprintf(&b, "| workload | path | %s |\n|---|---|%s\n", strings.Join(comparedMetrics, " | "), strings.Repeat("---|", len(comparedMetrics)))
	for _, wl := range workloads {
		for _, p := range compared {
			cells := make([]string, len(comparedMetrics))
			any := false
			for i, name := range comparedMetrics {
				if r, ok := ratio(summary, wl, p, baseline, name); ok {
					cells[i], any = times(r), true
				}
			}
			if any {
				fmt.Fprintf(&b, "| %s | %s | %s |\n", wl, p, strings.Join(cells, " | "))
			}
		}
	}
	writeOverhead(&b, summary, workloads)
	fmt.Fprintf(&b, "\n## Reading\n\n")
	for _, p := range compared {
		for _, name := range comparedMetrics {
			if s := reading(summary, workloads, p, baseline, name); s != "" {
				fmt.Fprintf(&b, "- %s\n", s)
			}
		}
	}
	for _, p := range migrations {
		if s := downtimeReading(summary, workloads, p); s != "" {
			fmt.Fprintf(&b, "- %s\n", s)
		}
	}
	fmt.Fprintf(&b, "\n## Targets\n\n")
	for _, t := range targets(r, summary, workloads, baseline) {
		fmt.Fprintf(&b, "- %s\n", t)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// splitPaths separates the paths that stay on this host from those that
// migrate to the --to dock.
func splitPaths(paths []string) (local, migrations []string) {
	for _, p := range paths {
		if Migrating(p) {
			migrations = append(migrations, p)
		} else {
			local = append(local, p)
		}
	}
	return local, migrations
}

// splitMetrics separates CRIU's own statistics from the others.
func splitMetrics(names []string) (own, criu []string) {
	for _, n := range names {
		if strings.HasPrefix(n, "criu-") {
			criu = append(criu, n)
		} else {
			own = append(own, n)
		}
	}
	return own, criu
}

// writeTable writes a table of the metrics of each path that measured
// any of them, for workload wl.
func writeTable(b *strings.Builder, summary map[Key]map[string]Stat, wl string, paths, metrics []string) {
	fmt.Fprintf(b, "| path | %s |\n|---|%s\n", strings.Join(metrics, " | "), strings.Repeat("---|", len(metrics)))
	for _, p := range paths {
		cells := make([]string, len(metrics))
		any := false
		for i, name := range metrics {
			if s, ok := summary[Key{wl, p}][name]; ok {
				cells[i], any = cell(name, s), true
			}
		}
		if any {
			fmt.Fprintf(b, "| %s | %s |\n", label(p), strings.Join(cells, " | "))
		}
	}
	b.WriteString("\n")
}

// cell writes a statistic: its median, and its range when there are
// several runs.
func cell(name string, s Stat) string {
	if s.N < 2 {
		return format(name, s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", format(name, s.Median), format(name, s.Min), format(name, s.Max))
}

// comparable are the paths whose times compare with baseline's: neither
// the baseline, nor a reference, nor emulated.
func comparable(paths []string, baseline string) []string {
	var out []string
	for _, p := range paths {
		if p != baseline && p != PathNative && p != PathWasmPlain && p != PathWasmPrepared && !Emulated(p) && !Migrating(p) {
			out = append(out, p)
		}
	}
	return out
}

// writeOverhead writes the run-time overhead of the prepared module over
// the plain one, and of the plain one over native, per workload and as
// geometric means.
func writeOverhead(b *strings.Builder, s map[Key]map[string]Stat, workloads []string) {
	fmt.Fprintf(b, "\n## Run-time overhead\n\nUninterrupted run times divided (below 1.10 is the target for the prepared module).\n\n| workload | prepared / plain Wasm | plain Wasm / native |\n|---|---|---|\n")
	for _, wl := range workloads {
		prep, _ := ratio(s, wl, PathWasmPlain, PathWasmPrepared, "run-ms")
		plain, _ := ratio(s, wl, PathNative, PathWasmPlain, "run-ms")
		fmt.Fprintf(b, "| %s | %s | %s |\n", wl, times(prep), times(plain))
	}
	prep, _ := geomean(s, workloads, PathWasmPlain, PathWasmPrepared, "run-ms")
	plain, _ := geomean(s, workloads, PathNative, PathWasmPlain, "run-ms")
	fmt.Fprintf(b, "| geometric mean | %s | %s |\n", times(prep), times(plain))
}

// times writes a ratio ("" when there is none), with two decimals, or
// two significant digits below 0.1.
func times(r float64) string {
	switch {
	case r == 0:
		return ""
	case r < 0.1:
		return fmt.Sprintf("%.2g×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}

// geomean is the geometric mean over workloads of ratio(path, baseline).
func geomean(s map[Key]map[string]Stat, workloads []string, path, baseline, name string) (float64, bool) {
	sum, n := 0.0, 0
	for _, wl := range workloads {
		if r, ok := ratio(s, wl, path, baseline, name); ok {
			sum += math.Log(r)
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return math.Exp(sum / float64(n)), true
}

// targets says, for each target of the comparison, whether the results
// meet it, with the numbers: where one is missed, the workloads that
// miss it.
func targets(r *Results, s map[Key]map[string]Stat, workloads []string, baseline string) []string {
	var out []string
	every := func(what, path, against, metric string, want float64) {
		var miss []string
		n := 0
		for _, wl := range workloads {
			v, ok := ratio(s, wl, path, against, metric)
			if !ok {
				continue
			}
			n++
			if v < want {
				miss = append(miss, fmt.Sprintf("%s %s", wl, times(v)))
			}
		}
		switch {
		case n == 0:
			return
		case len(miss) == 0:
			out = append(out, fmt.Sprintf("%s on every workload: **met**.", what))
		default:
			out = append(out, fmt.Sprintf("%s on every workload: **not met** on %d of %d (%s).", what, len(miss), n, strings.Join(miss, ", ")))
		}
	}
	every("Portable snapshot ≥ 5× smaller than raw CRIU's images", PathVesselSnapshot, baseline, "image-bytes", 5)
	every("Portable snapshot checkpoint ≥ 3× faster than raw CRIU's", PathVesselSnapshot, baseline, "checkpoint-ms", 3)
	every("podctl checkpoint faster than raw CRIU", PathPodctl, baseline, "checkpoint-ms", 1)
	every("podctl restore faster than raw CRIU", PathPodctl, baseline, "restore-ms", 1)
	every("podctl checkpoint faster than Podman", PathPodctl, PathPodman, "checkpoint-ms", 1)
	every("podctl restore faster than Podman", PathPodctl, PathPodman, "restore-ms", 1)
	if g, ok := geomean(s, workloads, PathWasmPlain, PathWasmPrepared, "run-ms"); ok {
		verdict := "met"
		if g > 1.10 {
			verdict = "not met"
		}
		out = append(out, fmt.Sprintf("Prepared module's run-time overhead ≤ 1.10× (geometric mean over the suite): %.2f×, **%s**.", g, verdict))
	}
	if m := r.Mismatches(); len(m) > 0 {
		out = append(out, fmt.Sprintf("Every restored run's checksum equals the uninterrupted run's: **not met** on %d runs (%s).", len(m), strings.Join(m, "; ")))
	} else {
		line := fmt.Sprintf("Every restored run's checksum equals the uninterrupted run's: **met** (%d runs, every path and ISA", len(r.Runs)-len(r.Missed()))
		if n := len(r.Missed()); n > 0 {
			line += fmt.Sprintf("; %d runs missed their checkpoint", n)
		}
		out = append(out, line+").")
	}
	return out
}

// ratio is how many times better than baseline path is on the metric
// name for workload wl: the baseline's median over the path's.
func ratio(s map[Key]map[string]Stat, wl, path, baseline, name string) (float64, bool) {
	p, okp := s[Key{wl, path}][name]
	base, okb := s[Key{wl, baseline}][name]
	if !okp || !okb || p.Median <= 0 || base.Median <= 0 {
		return 0, false
	}
	return base.Median / p.Median, true
}

// reading says in one sentence how path compares with baseline on the
// metric name over the workloads: on how many it is better, the
// geometric mean of the ratios, and the extremes.
func reading(s map[Key]map[string]Stat, workloads []string, path, baseline, name string) string {
	type point struct {
		wl string
		r  float64
	}
	var pts []point
	better, logSum := 0, 0.0
	for _, wl := range workloads {
		if r, ok := ratio(s, wl, path, baseline, name); ok {
			pts = append(pts, point{wl, r})
			logSum += math.Log(r)
			if r > 1 {
				better++
			}
		}
	}
	if len(pts) == 0 {
		return ""
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].r < pts[j].r })
	word := map[string]string{"checkpoint-ms": "checkpoints faster", "restore-ms": "restores faster", "image-bytes": "writes a smaller image"}[name]
	if word == "" {
		word = "does better on " + name
	}
	s2 := fmt.Sprintf("%s %s than %s on %d of %d workloads (geometric mean %s", path, word, baseline, better, len(pts), times(math.Exp(logSum/float64(len(pts)))))
	if len(pts) > 1 {
		lo, hi := pts[0], pts[len(pts)-1]
		s2 += fmt.Sprintf("; from %s on %s to %s on %s", times(lo.r), lo.wl, times(hi.r), hi.wl)
	}
	return s2 + ")."
}

// order lists the workloads and paths of runs in the order they first
// appear.
func order(runs []Run) (workloads, paths []string) {
	seenW, seenP := map[string]bool{}, map[string]bool{}
	for _, r := range runs {
		if !seenW[r.Workload] {
			seenW[r.Workload] = true
			workloads = append(workloads, r.Workload)
		}
		if !seenP[r.Path] {
			seenP[r.Path] = true
			paths = append(paths, r.Path)
		}
	}
	return workloads, paths
}

// metricNames lists the metrics any path measured for wl, in name order.
func metricNames(s map[Key]map[string]Stat, wl string, paths []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range paths {
		for name := range s[Key{wl, p}] {
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// format writes a value of the metric name in its unit.
func format(name string, v float64) string {
	switch {
	case strings.HasSuffix(name, "-bytes"):
		return human.Bytes(int64(v))
	case strings.HasSuffix(name, "-ms"):
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%g", v)
}

// downtimeReading says how long the migration path kept the workloads
// down: the lowest and highest of their median downtimes.
func downtimeReading(s map[Key]map[string]Stat, workloads []string, path string) string {
	lo, hi, n := math.Inf(1), math.Inf(-1), 0
	var loW, hiW string
	for _, wl := range workloads {
		st, ok := s[Key{wl, path}]["downtime-ms"]
		if !ok {
			continue
		}
		n++
		if st.Median < lo {
			lo, loW = st.Median, wl
		}
		if st.Median > hi {
			hi, hiW = st.Median, wl
		}
	}
	switch {
	case n == 0:
		return ""
	case n == 1:
		return fmt.Sprintf("%s keeps %s down for %s.", path, loW, format("downtime-ms", lo))
	}
	return fmt.Sprintf("%s keeps a workload down for %s (%s) to %s (%s).", path, format("downtime-ms", lo), loW, format("downtime-ms", hi), hiW)
}
