package prepare

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

// workload is one program run of the overhead benchmark.
type workload struct {
	name string
	args []string
}

// BenchmarkOverhead measures how much slower prepared modules run than
// the originals, on the workloads of the C and Go test guests, and
// reports the ratio for each and their geometric mean (in the last
// sub-benchmark, "geomean"). Each iteration runs the original and the
// prepared module once each, one after the other; the ratio is that of
// their fastest runs, the least disturbed by other work on the machine.
// Only the entry point is timed, not compilation nor instantiation.
func BenchmarkOverhead(b *testing.B) {
	guests := []struct {
		name      string
		module    []byte
		workloads []workload
	}{
		{"c", buildC(b, "guest", "-O2"), []workload{
			{"fib", []string{"fib", "10"}},
			{"deep", []string{"deep", "4"}},
			{"mutual", []string{"mutual", "200"}},
			{"sieve", []string{"sieve", "3"}},
			{"sort", []string{"sort", "1"}},
			{"ops", []string{"ops", "2"}},
		}},
		{"go", buildGo(b), []workload{
			{"fib", []string{"fib", "2"}},
			{"sort", []string{"sort", "1"}},
			{"map", []string{"map", "1"}},
			{"sha", []string{"sha", "1"}},
			{"chan", []string{"chan", "1"}},
		}},
	}
	ctx := context.Background()
	cache := wazero.NewCompilationCache()
	b.Cleanup(func() { cache.Close(ctx) })
	// The benchmark function of a workload runs again with a larger
	// b.N until it runs long enough: the last run's ratio counts.
	ratios := make(map[string]float64)
	for _, g := range guests {
		prepared := prepareModule(b, g.module)
		for _, w := range g.workloads {
			b.Run(g.name+"/"+w.name, func(b *testing.B) {
				best := [2]time.Duration{math.MaxInt64, math.MaxInt64}
				var want string
				for i := 0; i < b.N; i++ {
					for j, m := range [][]byte{g.module, prepared} {
						h := newHost(ctx, b, runtimeConfig(cache), m, w.args...)
						start := time.Now()
						o, err := h.run(ctx)
						d := time.Since(start)
						if err != nil {
							b.Fatal(err)
						}
						if j == 0 {
							want = o.stdout
						} else if o.stdout != want {
							b.Fatalf("prepared module printed\n%s\nwant\n%s", o.stdout, want)
						}
						best[j] = min(best[j], d)
						h.close(ctx)
					}
				}
				ratio := float64(best[1]) / float64(best[0])
				b.ReportMetric(float64(best[0].Microseconds())/1000, "orig-ms")
				b.ReportMetric(float64(best[1].Microseconds())/1000, "prep-ms")
				b.ReportMetric(ratio, "ratio")
				ratios[g.name+"/"+w.name] = ratio
			})
		}
	}
	b.Run("geomean", func(b *testing.B) {
		if len(ratios) == 0 {
			b.Skip("no workload ran")
		}
		sum := 0.0
		for _, r := range ratios {
			sum += math.Log(r)
		}
		b.ReportMetric(math.Exp(sum/float64(len(ratios))), "ratio")
	})
}
