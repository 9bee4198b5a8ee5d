// Package compare measures podctl's ways of checkpointing, restoring and
// migrating a workload side by side, against raw CRIU (the baseline of
// the papers) and against what a user would pick instead, on the suite
// of package compare/workloads: `podctl compare`.
//
// This file holds what a comparison produces: runs, their summary
// (median and min–max, as every comparison of this project reports),
// and the results in JSON and in Go's benchmark format, which benchstat
// compares across machines and versions.
package compare

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Run is one measured run of one workload on one path.
type Run struct {
	Workload string `json:"workload"`
	Path     string `json:"path"`
	// Index counts the path's runs of the workload from 0.
	Index int `json:"run"`
	// Checksum is what the restored run printed last, and Match whether
	// it equals the uninterrupted reference's.
	Checksum string `json:"checksum"`
	Match    bool   `json:"match"`
	// Metrics are the run's measures by name; a name ends in its unit
	// ("checkpoint-ms", "image-bytes"), as Go benchmark units do.
	Metrics map[string]float64 `json:"metrics"`
	// Missed says why the run has no measures: its workload ended
	// before the path's checkpoint command could stop it (a command that
	// is slow to start, on a small size).
	Missed string `json:"missed,omitempty"`
}

// Key names one workload on one path.
type Key struct{ Workload, Path string }

// Stat is a metric over a path's runs of a workload.
type Stat struct {
	Median, Min, Max float64
	// N is how many runs measured it.
	N int
}

// Summarize computes each metric's median and range per workload and
// path.
func Summarize(runs []Run) map[Key]map[string]Stat {
	values := map[Key]map[string][]float64{}
	for _, r := range runs {
		k := Key{r.Workload, r.Path}
		if values[k] == nil {
			values[k] = map[string][]float64{}
		}
		for m, v := range r.Metrics {
			values[k][m] = append(values[k][m], v)
		}
	}
	out := map[Key]map[string]Stat{}
	for k, metrics := range values {
		out[k] = map[string]Stat{}
		for m, vs := range metrics {
			out[k][m] = stat(vs)
		}
	}
	return out
}

// stat is the median and range of vs (not empty): the mean of the two
// middle values when there is an even number of them.
func stat(vs []float64) Stat {
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	n := len(s)
	median := s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return Stat{Median: median, Min: s[0], Max: s[n-1], N: n}
}

// Machine describes where a comparison ran: its numbers mean little
// without it.
type Machine struct {
	OS     string `json:"os"`
	Arch   string `json:"arch"`
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Kernel string `json:"kernel"`
	CRIU   string `json:"criu"`
	// LoadAverage is the 1-minute load average when the comparison
	// started.
	LoadAverage float64 `json:"loadAverage"`
}

// WriteBenchmarks writes runs in Go's benchmark format, one line per
// measured run (benchstat takes the medians), after a header describing the machine:
//
//	BenchmarkCompare/workload=nbody/path=criu-podctl 1 12.5 checkpoint-ms 3.1e+06 image-bytes
//
// Metrics are written in name order, so that two files line up.
func WriteBenchmarks(w io.Writer, m Machine, runs []Run) error {
	var b strings.Builder
	fmt.Fprintf(&b, "goos: %s\ngoarch: %s\npkg: github.com/podctl/podctl/compare\n", m.OS, m.Arch)
	fmt.Fprintf(&b, "cpu: %s\ncores: %d\nkernel: %s\ncriu: %s\nloadavg: %.2f\n", oneLine(m.CPU), m.Cores, oneLine(m.Kernel), oneLine(m.CRIU), m.LoadAverage)
	for _, r := range runs {
		if r.Missed != "" {
			continue
		}
		fmt.Fprintf(&b, "BenchmarkCompare/workload=%s/path=%s 1", r.Workload, r.Path)
		names := make([]string, 0, len(r.Metrics))
		for name := range r.Metrics {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Fprintf(&b, " %s %s", strconv.FormatFloat(r.Metrics[name], 'g', -1, 64), name)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// oneLine keeps a header value on its line ("unknown" if empty).
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "unknown"
	}
	return s
}
