package compare

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Charts are the SVG charts a comparison draws: file name, metric and
// title.
var Charts = []struct{ File, Metric, Title string }{
	{"checkpoint.svg", "checkpoint-ms", "Checkpoint time (whole command)"},
	{"restore.svg", "restore-ms", "Restore time (whole command)"},
	{"size.svg", "image-bytes", "Image or snapshot on disk"},
	{"overhead.svg", "run-ms", "Run time, uninterrupted"},
	// Drawn with --to only.
	{"downtime.svg", "downtime-ms", "Migration downtime"},
}

// chartPaths are the paths each chart shows: the references only for
// run time, the migrations only for downtime, the checkpointing paths
// for the others; emulated ones never (their times measure the
// emulator).
func chartPaths(metric string, path string) bool {
	reference := path == PathNative || path == PathWasmPlain || path == PathWasmPrepared
	switch {
	case Emulated(path):
		return false
	case metric == "run-ms":
		return reference
	case metric == "downtime-ms":
		return Migrating(path)
	}
	return !reference && !Migrating(path)
}

// Write writes the results into dir: report.md, results.json,
// results.txt (Go benchmark format) and the charts.
func (r *Results) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	files := map[string]*bytes.Buffer{}
	buf := func(name string) *bytes.Buffer {
		files[name] = &bytes.Buffer{}
		return files[name]
	}
	if err := r.WriteJSON(buf("results.json")); err != nil {
		return err
	}
	if err := WriteBenchmarks(buf("results.txt"), r.Machine, r.Runs); err != nil {
		return err
	}
	if err := WriteReport(buf("report.md"), r, Baseline); err != nil {
		return err
	}
	for _, c := range Charts {
		var runs []Run
		for _, run := range r.Runs {
			if chartPaths(c.Metric, run.Path) {
				runs = append(runs, run)
			}
		}
		if len(runs) == 0 {
			continue
		}
		if err := WriteChart(buf(c.File), runs, c.Metric, c.Title); err != nil {
			return fmt.Errorf("%s: %w", c.File, err)
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(dir, name), files[name].Bytes(), 0o644); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	return nil
}

// Mismatches lists the runs whose checksum differs from the reference's,
// one line each.
func (r *Results) Mismatches() []string {
	var out []string
	for _, run := range r.Runs {
		if !run.Match {
			out = append(out, fmt.Sprintf("%s on %s, run %d: checksum %s", run.Workload, run.Path, run.Index+1, run.Checksum))
		}
	}
	return out
}

// Missed lists the runs that have no measures, and why, one line each.
func (r *Results) Missed() []string {
	var out []string
	for _, run := range r.Runs {
		if run.Missed != "" {
			out = append(out, fmt.Sprintf("%s on %s, run %d: %s", run.Workload, run.Path, run.Index+1, run.Missed))
		}
	}
	return out
}

// Summary is what `podctl compare` prints when it is done: whether every
// checksum matched, and where the report is.
func (r *Results) Summary(dir string) string {
	var b strings.Builder
	if m := r.Mismatches(); len(m) > 0 {
		fmt.Fprintf(&b, "%d runs, %d of them restored to a wrong result:\n  %s\n", len(r.Runs), len(m), strings.Join(m, "\n  "))
	} else {
		fmt.Fprintf(&b, "%d runs measured, every one with the uninterrupted run's checksum\n", len(r.Runs)-len(r.Missed()))
	}
	if m := r.Missed(); len(m) > 0 {
		fmt.Fprintf(&b, "%d runs missed their checkpoint:\n  %s\n", len(m), strings.Join(m, "\n  "))
	}
	fmt.Fprintf(&b, "report: %s\n", filepath.Join(dir, "report.md"))
	return b.String()
}
