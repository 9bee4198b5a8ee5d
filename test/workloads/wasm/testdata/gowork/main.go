// Command gowork is the Go workload for WebAssembly vessel tests, built
// with GOOS=wasip1 GOARCH=wasm (it also runs natively, which helps when
// changing it). It lives under testdata so that the module's go build and
// go vet leave it alone.
//
// Each step makes a batch of pseudo-random words (fixed seed), counts them
// in a map, sorts them by count and name, builds a text from them, has a
// pool of goroutines hash slices of that text (jobs and results over
// channels, results put back in job order), and prints a progress line.
// When /data exists it also writes a file per step under /data/gowork and
// appends to /data/gowork/log.txt, and at the end reads them all back.
//
// Nothing printed depends on map iteration order, goroutine scheduling,
// time or the runtime's randomness. Exits 0; 1 on an I/O error or a
// mismatch.
package main

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const (
	steps   = 24
	words   = 3000 // per step
	workers = 4
	chunks  = 32 // hashing jobs per step
)

type rng uint64

func (r *rng) next() uint64 {
	x := uint64(*r)
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	*r = rng(x)
	return x
}

func (r *rng) word() string {
	const letters = "etaoin"
	n := 2 + int(r.next()%3)
	var b [4]byte
	for i := 0; i < n; i++ {
		b[i] = letters[r.next()%uint64(len(letters))]
	}
	return string(b[:n])
}

type job struct {
	id   int
	text string
}

type result struct {
	id   int
	hash uint64
	runs int
}

// worker hashes each job's text many times over (the CPU work) and counts
// its runs of repeated letters.
func worker(jobs <-chan job, results chan<- result) {
	for j := range jobs {
		h := fnv.New64a()
		var sum uint64
		for k := 0; k < 2; k++ {
			h.Write([]byte(j.text))
			sum = sum*31 + h.Sum64()
		}
		runs := 0
		for i := 1; i < len(j.text); i++ {
			if j.text[i] == j.text[i-1] {
				runs++
			}
		}
		results <- result{j.id, sum, runs}
	}
}

type stat struct {
	word  string
	count int
}

func main() {
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	fail := func(err error) {
		say("gowork: %v", err)
		os.Exit(1)
	}

	data := ""
	if fi, err := os.Stat("/data"); err == nil && fi.IsDir() {
		data = "/data/gowork"
		if err := os.Mkdir(data, 0o755); err != nil {
			fail(err)
		}
	}
	say("gowork: start, data=%v", data != "")

	var log *os.File
	if data != "" {
		var err error
		log, err = os.OpenFile(filepath.Join(data, "log.txt"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			fail(err)
		}
	}

	jobs := make(chan job)
	results := make(chan result)
	for i := 0; i < workers; i++ {
		go worker(jobs, results)
	}

	r := rng(0x9e3779b97f4a7c15)
	counts := make(map[string]int)
	var total uint64
	for step := 0; step < steps; step++ {
		for i := 0; i < words; i++ {
			counts[r.word()]++
		}
		stats := make([]stat, 0, len(counts))
		for w, c := range counts {
			stats = append(stats, stat{w, c})
		}
		sort.Slice(stats, func(i, j int) bool {
			if stats[i].count != stats[j].count {
				return stats[i].count > stats[j].count
			}
			return stats[i].word < stats[j].word
		})

		var b strings.Builder
		for i, s := range stats {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s=%d", s.word, s.count)
		}
		text := b.String()

		// Hash slices of the text on the workers; collect by job id.
		go func() {
			n := len(text) / chunks
			for i := 0; i < chunks; i++ {
				end := (i + 1) * n
				if i == chunks-1 {
					end = len(text)
				}
				jobs <- job{i, text[i*n : end]}
			}
		}()
		got := make([]result, chunks)
		for i := 0; i < chunks; i++ {
			res := <-results
			got[res.id] = res
		}
		var hash uint64
		runs := 0
		for _, res := range got {
			hash = hash*1099511628211 ^ res.hash
			runs += res.runs
		}
		total = total*1099511628211 ^ hash

		if data != "" {
			name := filepath.Join(data, fmt.Sprintf("step-%02d.txt", step))
			top := stats
			if len(top) > 50 {
				top = top[:50]
			}
			var f strings.Builder
			for _, s := range top {
				fmt.Fprintf(&f, "%s %d\n", s.word, s.count)
			}
			if err := os.WriteFile(name, []byte(f.String()), 0o644); err != nil {
				fail(err)
			}
			if _, err := fmt.Fprintf(log, "step %d distinct=%d hash=%016x\n", step, len(stats), hash); err != nil {
				fail(err)
			}
		}
		say("step %d distinct=%d top=%s:%d text=%d runs=%d hash=%016x", step, len(stats), stats[0].word, stats[0].count, len(text), runs, hash)
	}
	close(jobs)

	if data != "" {
		if err := log.Close(); err != nil {
			fail(err)
		}
		entries, err := os.ReadDir(data)
		if err != nil {
			fail(err)
		}
		h := fnv.New64a()
		for _, e := range entries { // sorted by name
			b, err := os.ReadFile(filepath.Join(data, e.Name()))
			if err != nil {
				fail(err)
			}
			fmt.Fprintf(h, "%s %d\n", e.Name(), len(b))
			h.Write(b)
		}
		if len(entries) != steps+1 {
			fail(fmt.Errorf("%d files in %s, want %d", len(entries), data, steps+1))
		}
		say("gowork: %d files, hash=%016x", len(entries), h.Sum64())
	}
	say("gowork: checksum=%016x", total)
}
