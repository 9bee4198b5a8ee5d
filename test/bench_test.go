package test

import (
	"fmt"
	"sort"
	"testing"
	"time"
)

// BenchmarkPodLifecycle measures, through the CLI as a user runs it,
// `podctl create` until the payload runs (create returns only after the
// pod init has exec'd it) and `podctl rm -f` of a running pod, over 50
// pods, and reports the median and 95th percentile of each.
func BenchmarkPodLifecycle(b *testing.B) {
	h := newHost(b)
	const pods = 50
	var create, remove []time.Duration
	for i := 0; i < b.N; i++ {
		for j := 0; j < pods; j++ {
			name := fmt.Sprintf("bench%d-%d", i, j)
			start := time.Now()
			h.MustPodctl("create", "--name", name, "--", "sleep", "1000")
			create = append(create, time.Since(start))
		}
		for j := 0; j < pods; j++ {
			start := time.Now()
			h.MustPodctl("rm", "-f", fmt.Sprintf("bench%d-%d", i, j))
			remove = append(remove, time.Since(start))
		}
	}
	report(b, "create", create)
	report(b, "rm", remove)
}

func report(b *testing.B, what string, d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	b.ReportMetric(ms(d[len(d)/2]), what+"-median-ms")
	b.ReportMetric(ms(d[len(d)*95/100]), what+"-p95-ms")
	b.ReportMetric(0, "ns/op")
}
