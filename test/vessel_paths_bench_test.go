package test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// BenchmarkVesselPaths migrates the same running vessel between two amd64
// hosts through both paths a housed vessel has: CRIU (the pod housing
// it) and the portable snapshot (the guest's state only), alternately,
// and reports per workload the medians of downtime, total time and bytes
// sent for each path. Run it with -benchtime 1x and -v for the table.
// Guests run interpreted so that they last the trip; the engine does not
// change what either path moves.
func BenchmarkVesselPaths(b *testing.B) {
	harness.RequireRoot(b)
	wls := wasmWorkloads(b)
	lan := harness.NewLAN(b, podctlBin, 2)
	pki := lan.PKI(b)
	for i := range lan.Hosts {
		lan.StartDockEnv(b, i, pki, "PODCTL_WASM_ENGINE=interpreter")
	}
	const rounds = 5
	var table strings.Builder
	fmt.Fprintf(&table, "%-8s %-5s %12s %10s %10s\n", "workload", "path", "downtime-ms", "total-ms", "sent-KiB")
	for _, name := range []string{"recurse", "heap", "gowork"} {
		wl := wls[name]
		samples := map[string][][3]float64{}
		pod := "bp-" + name
		createVessel(b, lan.Hosts[0], wl, pod, "PODCTL_WASM_ENGINE=interpreter")
		from, seen := 0, 0
		for i := 0; i < 2*rounds; i++ {
			via := []string{"criu", "wasm"}[i%2]
			seen = waitNewLine(b, lan.Hosts[from], pod, seen, time.Minute)
			to := 1 - from
			r := lan.Hosts[from].Podctl("migrate", pod, "--via", via, "--to", lan.DockAddr(to), "--pki", pki, "--cert", "node", "--json")
			if r.Code != 0 {
				if strings.Contains(r.Stderr, "not running") {
					break // the guest finished: fewer samples
				}
				b.Fatalf("migrate --via %s: %s", via, r.Stderr)
			}
			var res struct {
				Downtime, Total                time.Duration
				Bytes, ArchiveBytes, PageBytes int64
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal([]byte(r.Stdout), &raw); err != nil {
				b.Fatal(err)
			}
			for k, dst := range map[string]any{"downtimeNs": &res.Downtime, "totalNs": &res.Total, "bytes": &res.Bytes, "archiveBytes": &res.ArchiveBytes, "pageBytes": &res.PageBytes} {
				if v, ok := raw[k]; ok {
					json.Unmarshal(v, dst)
				}
			}
			sent := res.Bytes + res.ArchiveBytes + res.PageBytes
			samples[via] = append(samples[via], [3]float64{ms64(res.Downtime), ms64(res.Total), float64(sent) / 1024})
			from = to
		}
		lan.Hosts[from].Podctl("rm", "-f", pod)
		for _, via := range []string{"criu", "wasm"} {
			med := medians3(samples[via])
			fmt.Fprintf(&table, "%-8s %-5s %12.1f %10.1f %10.1f\n", name, via, med[0], med[1], med[2])
			b.ReportMetric(med[0], name+"-"+via+"-downtime-ms")
		}
	}
	b.ReportMetric(0, "ns/op")
	b.Logf("\n%s", table.String())
}

func ms64(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// medians3 is the per-column median of samples (zeros if there are none).
func medians3(samples [][3]float64) [3]float64 {
	var out [3]float64
	for c := range out {
		col := make([]float64, len(samples))
		for i, s := range samples {
			col[i] = s[c]
		}
		sort.Float64s(col)
		if len(col) > 0 {
			out[c] = col[len(col)/2]
		}
	}
	return out
}
