package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/perf/benchfmt"

	"github.com/podctl/podctl/compare"
	"github.com/podctl/podctl/test/harness"
)

// TestCompare runs `podctl compare` as CI can afford it (two workloads,
// small, one run, one emulated ISA, migrations to another host's dock)
// and checks what it wrote: every restored run printed the uninterrupted
// run's checksum, results.json holds every metric of every path,
// results.txt parses as Go benchmark output, and each chart is
// well-formed SVG naming its paths. The pods it migrated are gone from
// the dock.
func TestCompare(t *testing.T) {
	harness.RequireRoot(t)
	lan := harness.NewLAN(t, podctlBin, 2)
	pki := lan.PKI(t)
	h, dock := lan.Hosts[0], lan.Hosts[1]
	lan.StartDock(t, 1, pki)
	_, err := harness.WasmClang()
	harness.SkipOrFail(t, err)
	harness.NeedTool(t, "gcc", "gcc")
	harness.NeedTool(t, "wasm-opt", "binaryen")
	isa := harness.ForeignISAs[0]
	for _, f := range harness.ForeignISAs {
		if f.GOARCH == "s390x" {
			isa = f
		}
	}
	// compare finds the podctl of another ISA beside itself.
	_, err = harness.BuildForeign(filepath.Dir(podctlBin), isa)
	harness.SkipOrFail(t, err)
	// A dock that does not take this node's certificate (another CA's)
	// is refused before anything runs.
	other := lan.PKIIn(t, t.TempDir()+"/other")
	if r := h.Podctl("compare", "--to", lan.DockAddr(1), "--pki", other, "--out", t.TempDir()); r.Code != 10 || !strings.Contains(r.Stderr, "does not answer this node") {
		t.Errorf("compare --to a dock of another CA: exit %d, %q", r.Code, r.Stderr)
	}
	out := t.TempDir()
	// Checkpoints a quarter into the run, not half: compare sleeps until
	// then and only then runs the command, whose freeze comes some 150 to
	// 300 ms later (podctl's start; a migration's handshake with the
	// dock), while kv's small run lasts about 750 ms. At half, a busy
	// moment made the freeze come after kv's end ("the workload finished
	// before its checkpoint", once in CI). With one busy loop beside
	// compare, kv's 9 migrations missed 7 times at half, none at a
	// quarter.
	r := h.Podctl("compare", "--size", "small", "--runs", "1", "--workloads", "nbody,kv", "--isa", isa.GOARCH,
		"--checkpoint-at", "0.25", "--to", lan.DockAddr(1), "--pki", pki, "--out", out, "--json")
	if r.Code != 0 {
		t.Fatalf("podctl compare: exit %d\n%s\n%s", r.Code, r.Stderr, r.Stdout)
	}
	var res compare.Results
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.Stdout)
	}

	// What each path must measure; the references only run.
	checkpointed := []string{"checkpoint-ms", "restore-ms", "frozen-ms", "image-bytes", "image-zstd-bytes", "footprint-bytes"}
	criu := append(append([]string{}, checkpointed...), "criu-frozen-ms", "criu-memdump-ms", "criu-written-pages", "criu-restore-ms")
	want := map[string][]string{
		compare.PathNative:         {"run-ms", "footprint-bytes"},
		compare.PathWasmPlain:      {"run-ms"},
		compare.PathWasmPrepared:   {"run-ms"},
		compare.Baseline:           criu,
		compare.PathPodctl:         criu,
		compare.PathVesselCRIU:     criu,
		compare.PathVesselSnapshot: checkpointed,
		"snapshot-" + isa.GOARCH:   {"checkpoint-ms", "restore-ms", "image-bytes"},
		// make deps installs Podman and runc.
		compare.PathPodman: append([]string{"criu-frozen-ms"}, checkpointed...),
	}
	for _, p := range []string{compare.PathPodctl, compare.PathVesselCRIU, compare.PathVesselSnapshot} {
		want["migrate-"+p] = []string{"migrate-ms", "downtime-ms", "dock-restore-ms", "sent-bytes", "footprint-bytes"}
	}
	seen, measured := map[string]int{}, 0
	for _, run := range res.Runs {
		seen[run.Workload+"/"+run.Path]++
		if run.Missed != "" {
			// Only Podman's slow start may miss a checkpoint at this size.
			if run.Path != compare.PathPodman {
				t.Errorf("%s on %s: %s", run.Workload, run.Path, run.Missed)
			}
			continue
		}
		measured++
		if !run.Match {
			t.Errorf("%s on %s: checksum %s differs from the uninterrupted run's", run.Workload, run.Path, run.Checksum)
		}
		for _, m := range want[run.Path] {
			if _, ok := run.Metrics[m]; !ok {
				t.Errorf("%s on %s: no %s in %v", run.Workload, run.Path, m, run.Metrics)
			}
		}
	}
	for _, wl := range []string{"nbody", "kv"} {
		for p := range want {
			if seen[wl+"/"+p] != 1 {
				t.Errorf("%s ran %d times on %s, want once", wl, seen[wl+"/"+p], p)
			}
		}
	}
	if res.Machine.CRIU == "" || res.Machine.Cores == 0 {
		t.Errorf("the machine is not described: %+v", res.Machine)
	}

	b, err := os.ReadFile(filepath.Join(out, "results.txt"))
	if err != nil {
		t.Fatal(err)
	}
	results := 0
	rd := benchfmt.NewReader(strings.NewReader(string(b)), "results.txt")
	for rd.Scan() {
		switch rec := rd.Result().(type) {
		case *benchfmt.SyntaxError:
			t.Errorf("results.txt: %v", rec)
		case *benchfmt.Result:
			results++
		}
	}
	if results != measured {
		t.Errorf("results.txt holds %d results, want one per measured run (%d)", results, measured)
	}

	report, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"## nbody", "## kv", "Ratios to criu", "emulated", "Migrations to " + lan.DockAddr(1), "keeps a workload down"} {
		if !strings.Contains(string(report), s) {
			t.Errorf("report.md does not say %q", s)
		}
	}
	for _, c := range compare.Charts {
		b, err := os.ReadFile(filepath.Join(out, c.File))
		if err != nil {
			t.Error(err)
			continue
		}
		root, text, err := harness.XMLText(b)
		if err != nil || root != "svg" {
			t.Errorf("%s: root %q, %v", c.File, root, err)
			continue
		}
		series := []string{compare.Baseline, compare.PathPodctl, compare.PathVesselCRIU, compare.PathVesselSnapshot}
		switch c.Metric {
		case "run-ms":
			series = []string{compare.PathNative, compare.PathWasmPlain, compare.PathWasmPrepared}
		case "downtime-ms":
			series = []string{"migrate-" + compare.PathPodctl, "migrate-" + compare.PathVesselCRIU, "migrate-" + compare.PathVesselSnapshot}
		}
		for _, s := range append(series, c.Title, "nbody", "kv") {
			if !strings.Contains(text, s) {
				t.Errorf("%s does not show %q", c.File, s)
			}
		}
	}
	if left := podNames(t, dock); left != "" {
		t.Errorf("the dock's host keeps %s after the comparison", left)
	}
}

// TestCompareBadInput checks that `podctl compare` refuses what it cannot
// measure, with one line and the README's exit status, before it runs
// anything.
func TestCompareBadInput(t *testing.T) {
	h := newHost(t)
	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		says string
	}{
		{"unknown workload", nil, []string{"--workloads", "nbody,redis"}, 2, `unknown workload "redis"`},
		{"no runs", nil, []string{"--runs", "0"}, 2, "--runs must be at least 1"},
		// Nothing listens on the discard port of the host's loopback.
		{"unreachable dock", nil, []string{"--to", "127.0.0.1:9"}, 10, "the dock is unreachable"},
		{"ISA without its qemu", []string{"PATH=" + empty}, []string{"--isa", "s390x"}, 10, "needs qemu-s390x-static, which is not installed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := h.Command(h.PodctlArgv(append([]string{"compare", "--out", t.TempDir()}, tc.args...)...)...)
			cmd.Env = append(os.Environ(), tc.env...)
			r := h.RunCmd(cmd)
			lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
			if r.Code != tc.code || len(lines) != 1 || !strings.Contains(lines[0], tc.says) {
				t.Errorf("exit %d, stderr %q; want exit %d and one line saying %q", r.Code, r.Stderr, tc.code, tc.says)
			}
		})
	}
}
