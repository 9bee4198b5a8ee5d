package compare

import (
	"bytes"
	"strings"
	"testing"
)

// TestReport checks the report of a made-up comparison: its tables, and
// the reading generated from them, against figures worked out by hand.
func TestReport(t *testing.T) {
	var runs []Run
	add := func(wl, path string, ckpt, size float64) {
		runs = append(runs, Run{Workload: wl, Path: path, Match: true, Metrics: map[string]float64{"checkpoint-ms": ckpt, "image-bytes": size}})
	}
	// raw-criu is the baseline; snapshot is 4x then 1/2x as fast, and
	// 10x smaller on both.
	add("nbody", "raw-criu", 100, 10<<20)
	add("nbody", "raw-criu", 120, 10<<20)
	add("nbody", "snapshot", 25, 1<<20)
	add("nbody", "snapshot", 30, 1<<20)
	add("kv", "raw-criu", 50, 300<<20)
	add("kv", "snapshot", 100, 30<<20)
	// A migration has its own table, and its downtime a sentence.
	migrated := func(wl string, downtime float64) {
		runs = append(runs, Run{Workload: wl, Path: pathMigrate + PathPodctl, Match: true, Metrics: map[string]float64{"downtime-ms": downtime}})
	}
	migrated("nbody", 80)
	migrated("nbody", 100)
	migrated("kv", 40)
	var buf bytes.Buffer
	res := &Results{Machine: Machine{OS: "linux", Arch: "amd64", CPU: "cpu", Cores: 2, Kernel: "6.1", CRIU: "4.2.1"}, Runs: runs, Options: Options{To: "dock:7070"}}
	if err := WriteReport(&buf, res, "raw-criu"); err != nil {
		t.Fatal(err)
	}
	report := buf.String()
	for _, want := range []string{
		"Machine: cpu, 2 cores, linux/amd64, kernel 6.1, CRIU 4.2.1",
		"## nbody\n\n| path | checkpoint-ms | image-bytes |",
		"| raw-criu | 110.0 ms (100.0 ms–120.0 ms) |",
		"| nbody | snapshot | 4.00× |  | 10.00× |",
		"| kv | snapshot | 0.50× |  | 10.00× |",
		// sqrt(4 * 0.5) = 1.41
		"- snapshot checkpoints faster than raw-criu on 1 of 2 workloads (geometric mean 1.41×; from 0.50× on kv to 4.00× on nbody).",
		"- snapshot writes a smaller image than raw-criu on 2 of 2 workloads (geometric mean 10.00×;",
		"Migrations to dock:7070 (",
		"| path | downtime-ms |\n|---|---|\n| migrate-podctl | 90.0 ms (80.0 ms–100.0 ms) |",
		"- migrate-podctl keeps a workload down for 40.0 ms (kv) to 90.0 ms (nbody).",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q:\n%s", want, report)
		}
	}
}
