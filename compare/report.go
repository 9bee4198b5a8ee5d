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

// WriteReport writes report.md: the machine, a table per workload (each
// path's metrics as median and min–max), a summary of each path's ratio
// to baseline per compared metric, and a reading of that summary
// generated from the numbers.
func WriteReport(w io.Writer, m Machine, runs []Run, baseline string) error {
	var b strings.Builder
	summary := Summarize(runs)
	workloads, paths := order(runs)
	fmt.Fprintf(&b, "# podctl compare\n\n")
	fmt.Fprintf(&b, "Machine: %s, %d cores, %s/%s, kernel %s, CRIU %s, load average %.2f at the start.\n",
		oneLine(m.CPU), m.Cores, m.OS, m.Arch, oneLine(m.Kernel), oneLine(m.CRIU), m.LoadAverage)
	fmt.Fprintf(&b, "Each figure is the median of the runs, with the minimum and maximum in brackets.\n\n")
	for _, wl := range workloads {
		metrics := metricNames(summary, wl, paths)
		fmt.Fprintf(&b, "## %s\n\n| path | %s |\n|---|%s\n", wl, strings.Join(metrics, " | "), strings.Repeat("---|", len(metrics)))
		for _, p := range paths {
			stats, ok := summary[Key{wl, p}]
			if !ok {
				continue
			}
			cells := make([]string, len(metrics))
			for i, name := range metrics {
				if s, ok := stats[name]; ok {
					cells[i] = fmt.Sprintf("%s (%s–%s)", format(name, s.Median), format(name, s.Min), format(name, s.Max))
				}
			}
			fmt.Fprintf(&b, "| %s | %s |\n", p, strings.Join(cells, " | "))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "## Ratios to %s\n\nHow many times faster or smaller than %s each path is (its median to %s's): above 1 is better, below 1 worse.\n\n", baseline, baseline, baseline)
	fmt.Fprintf(&b, "| workload | path | %s |\n|---|---|%s\n", strings.Join(comparedMetrics, " | "), strings.Repeat("---|", len(comparedMetrics)))
	for _, wl := range workloads {
		for _, p := range paths {
			if p == baseline || summary[Key{wl, p}] == nil {
				continue
			}
			cells := make([]string, len(comparedMetrics))
			for i, name := range comparedMetrics {
				if r, ok := ratio(summary, wl, p, baseline, name); ok {
					cells[i] = fmt.Sprintf("%.2f×", r)
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", wl, p, strings.Join(cells, " | "))
		}
	}
	fmt.Fprintf(&b, "\n## Reading\n\n")
	for _, p := range paths {
		if p == baseline {
			continue
		}
		for _, name := range comparedMetrics {
			if s := reading(summary, workloads, p, baseline, name); s != "" {
				fmt.Fprintf(&b, "- %s\n", s)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
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
	s2 := fmt.Sprintf("%s %s than %s on %d of %d workloads (geometric mean %.2f×", path, word, baseline, better, len(pts), math.Exp(logSum/float64(len(pts))))
	if len(pts) > 1 {
		lo, hi := pts[0], pts[len(pts)-1]
		s2 += fmt.Sprintf("; from %.2f× on %s to %.2f× on %s", lo.r, lo.wl, hi.r, hi.wl)
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
