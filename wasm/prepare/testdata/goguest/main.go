// Command goguest is the Go test guest of package prepare, built with
// GOOS=wasip1 GOARCH=wasm: recursion, maps, sorting, hashing, closures
// and goroutines, and output that depends on all of them.
// Usage: goguest [workload [scale]], workload one of all, fib, sort, map,
// sha, chan, or quick (all of them, small); the exit code is 3.
package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

func fib(n int) int {
	if n < 2 {
		return n
	}
	return fib(n-1) + fib(n-2)
}

func sorted(n int) uint64 {
	a := make([]uint32, n)
	x := uint32(12345)
	for i := range a {
		x = x*1103515245 + 12345
		a[i] = x >> 8
	}
	sort.Slice(a, func(i, j int) bool { return a[i] < a[j] })
	var h uint64
	for _, v := range a {
		h = h*31 + uint64(v)
	}
	return h
}

func maps(n int) int {
	m := make(map[string]int)
	for i := 0; i < n; i++ {
		m["k"+strconv.Itoa(i%5000)] += i
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := 0
	for _, k := range keys[:10] {
		s += m[k]
	}
	return s + len(strings.Join(keys, ","))
}

func hashes(n int) string {
	sum := sha256.Sum256([]byte("podctl"))
	for i := 0; i < n; i++ {
		sum = sha256.Sum256(sum[:])
	}
	return fmt.Sprintf("%x", sum[:8])
}

func pipeline(n int) int {
	in := make(chan int)
	out := make(chan int)
	for w := 0; w < 4; w++ {
		go func() {
			for v := range in {
				out <- fib(v%15) + v
			}
		}()
	}
	go func() {
		for i := 0; i < n; i++ {
			in <- i
		}
		close(in)
	}()
	s := 0
	for i := 0; i < n; i++ {
		s += <-out
	}
	return s
}

func main() {
	w, scale := "all", 1
	if len(os.Args) > 1 {
		w = os.Args[1]
	}
	if len(os.Args) > 2 {
		scale, _ = strconv.Atoi(os.Args[2])
	}
	quick := w == "quick"
	all := quick || w == "all"
	// In quick mode, problem sizes are divided by div.
	div := 1
	if quick {
		div = 100
	}
	for i := 0; i < scale; i++ {
		if all || w == "fib" {
			fmt.Println("fib", fib(27+i%2-div/20))
		}
		if all || w == "sort" {
			fmt.Println("sort", sorted(300000/div+i))
		}
		if all || w == "map" {
			fmt.Println("map", maps(300000/div+i))
		}
		if all || w == "sha" {
			fmt.Println("sha", hashes(100000/div+i))
		}
		if all || w == "chan" {
			fmt.Println("chan", pipeline(20000/div+i))
		}
	}
	os.Exit(3)
}
