package compare

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/perf/benchfmt"
)

func TestSummarize(t *testing.T) {
	runs := []Run{
		{Workload: "nbody", Path: "criu", Metrics: map[string]float64{"checkpoint-ms": 30}},
		{Workload: "nbody", Path: "criu", Metrics: map[string]float64{"checkpoint-ms": 10}},
		{Workload: "nbody", Path: "criu", Metrics: map[string]float64{"checkpoint-ms": 20, "image-bytes": 7}},
		{Workload: "nbody", Path: "criu", Metrics: map[string]float64{"checkpoint-ms": 40}},
		{Workload: "kv", Path: "criu", Metrics: map[string]float64{"checkpoint-ms": 5}},
	}
	s := Summarize(runs)
	if got, want := s[Key{"nbody", "criu"}]["checkpoint-ms"], (Stat{Median: 25, Min: 10, Max: 40, N: 4}); got != want {
		t.Errorf("nbody checkpoint: %+v, want %+v", got, want)
	}
	if got, want := s[Key{"nbody", "criu"}]["image-bytes"], (Stat{Median: 7, Min: 7, Max: 7, N: 1}); got != want {
		t.Errorf("nbody image: %+v, want %+v", got, want)
	}
	if got := s[Key{"kv", "criu"}]["checkpoint-ms"]; got.Median != 5 || got.N != 1 {
		t.Errorf("kv checkpoint: %+v", got)
	}
}

// TestBenchmarkFormat writes runs and reads them back with the reader
// benchstat uses (golang.org/x/perf/benchfmt).
func TestBenchmarkFormat(t *testing.T) {
	runs := []Run{
		{Workload: "nbody", Path: "criu-podctl", Metrics: map[string]float64{"checkpoint-ms": 12.5, "image-bytes": 3.1e6}},
		{Workload: "kv", Path: "snapshot", Metrics: map[string]float64{"checkpoint-ms": 0.25}},
	}
	var buf bytes.Buffer
	m := Machine{OS: "linux", Arch: "amd64", CPU: "Some\nCPU", Cores: 2, Kernel: "6.1", LoadAverage: 0.5}
	if err := WriteBenchmarks(&buf, m, runs); err != nil {
		t.Fatal(err)
	}
	r := benchfmt.NewReader(bytes.NewReader(buf.Bytes()), "results.txt")
	type value struct {
		name, unit string
		v          float64
	}
	var got []value
	config := map[string]string{}
	for r.Scan() {
		res, ok := r.Result().(*benchfmt.Result)
		if !ok {
			if e, isErr := r.Result().(*benchfmt.SyntaxError); isErr {
				t.Fatalf("results.txt does not parse: %v\n%s", e, buf.String())
			}
			continue
		}
		for _, c := range res.Config {
			config[c.Key] = string(c.Value)
		}
		for _, v := range res.Values {
			got = append(got, value{string(res.Name), v.Unit, v.Value})
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	want := []value{
		{"Compare/workload=nbody/path=criu-podctl", "checkpoint-ms", 12.5},
		{"Compare/workload=nbody/path=criu-podctl", "image-bytes", 3.1e6},
		{"Compare/workload=kv/path=snapshot", "checkpoint-ms", 0.25},
	}
	if len(got) != len(want) {
		t.Fatalf("read back %v, want %v\n%s", got, want, buf.String())
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("value %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if config["cpu"] != "Some CPU" || config["cores"] != "2" || config["goarch"] != "amd64" {
		t.Errorf("machine header read back as %v", config)
	}
}

// TestThisMachine checks the description against what the system
// reports through other means.
func TestThisMachine(t *testing.T) {
	m := ThisMachine(context.Background(), func(context.Context) string { return "4.2.1" })
	if m.Cores != runtime.NumCPU() || m.CRIU != "4.2.1" || m.OS != runtime.GOOS {
		t.Errorf("machine %+v", m)
	}
	if runtime.GOOS != "linux" {
		return
	}
	release, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	if m.Kernel != strings.TrimSpace(string(release)) {
		t.Errorf("kernel %q, /proc/sys/kernel/osrelease says %q", m.Kernel, release)
	}
	if m.CPU == "" && runtime.GOARCH == "amd64" {
		t.Error("no CPU model read from /proc/cpuinfo")
	}
	if m.LoadAverage < 0 {
		t.Errorf("load average %v", m.LoadAverage)
	}
}
