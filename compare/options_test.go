package compare

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/podctl/podctl/compare/workloads"
	"github.com/podctl/podctl/internal/errdefs"
)

func TestOptionsCheck(t *testing.T) {
	installed := func(name string) (string, error) {
		if name == "qemu-s390x-static" {
			return "/usr/bin/" + name, nil
		}
		return "", errors.New("not found")
	}
	good := Options{Workloads: []string{"nbody", "kv"}, Size: workloads.Small, Runs: 1, ISAs: []string{"s390x"}, CheckpointAt: 0.5}
	ws, err := good.Check(installed)
	if err != nil || len(ws) != 2 {
		t.Fatalf("good options: %v, %v", ws, err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		kind errdefs.Kind
		want string
	}{
		{"unknown workload", func(o *Options) { o.Workloads = []string{"redis"} }, errdefs.Usage, `unknown workload "redis"`},
		{"no runs", func(o *Options) { o.Runs = 0 }, errdefs.Usage, "--runs must be at least 1"},
		{"bad size", func(o *Options) { o.Size = "huge" }, errdefs.Usage, "--size must be small or full"},
		{"checkpoint after the end", func(o *Options) { o.CheckpointAt = 1 }, errdefs.Usage, "--checkpoint-at"},
		{"unknown ISA", func(o *Options) { o.ISAs = []string{"mips"} }, errdefs.Usage, "--isa mips"},
		{"ISA without its qemu", func(o *Options) { o.ISAs = []string{"arm64"} }, errdefs.Unsupported, "needs qemu-aarch64-static"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			o := good
			tc.edit(&o)
			_, err := o.Check(installed)
			if errdefs.KindOf(err) != tc.kind || err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("got %v (kind %v), want one line of kind %v containing %q", err, errdefs.KindOf(err), tc.kind, tc.want)
			}
		})
	}
}

func TestResultsJSON(t *testing.T) {
	r := Results{Machine: Machine{OS: "linux", Cores: 2}, Runs: []Run{{Workload: "kv", Path: "snapshot", Match: true, Metrics: map[string]float64{"checkpoint-ms": 1.5}}}}
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Runs[0].Metrics["checkpoint-ms"] != 1.5 || back.Machine.Cores != 2 || !back.Runs[0].Match {
		t.Fatalf("read back %+v", back)
	}
}
