package compare

import (
	"bytes"
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
