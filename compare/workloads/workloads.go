// Package workloads is the workload suite of `podctl compare`: C
// programs, the evaluation suites of the Wanco and Wharf papers, that
// build from one source natively (gcc, static) and for wasm32-wasi
// (clang), so that every migration path runs the same computation.
//
// Each takes its size as its first argument and prints, last, the line
// "checksum NAME HEX": a 64-bit FNV-1a of its result (src/checksum.h). A run
// restored on any path, on any ISA, must print the same line as an
// uninterrupted one. Floating-point code is built without fused
// multiply-adds, so that results are bit for bit the same everywhere.
package workloads

import (
	"context"
	"embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

//go:embed src/*.c src/*.h
var sources embed.FS

// Size names one of a workload's two sizes.
type Size string

const (
	// Small runs each workload for about half a second natively: for
	// CI, long enough that a checkpoint at half the run is not beaten by
	// the start of the command that takes it.
	Small Size = "small"
	// Full runs each for seconds natively, with the papers' sizes
	// (graphs of a million vertices, a 256 MiB store).
	Full Size = "full"
)

// Workload is one program of the suite.
type Workload struct {
	// Name is the workload's name, and its source's (NAME.c).
	Name string
	// What says what it computes.
	What string
	// SmallArg and FullArg are its size argument at each size.
	SmallArg, FullArg string
	// NeedsDir says that it takes a data directory as its second
	// argument: its files are part of its state, and of its result.
	NeedsDir bool
}

// Suite is every workload, in the report's order.
var Suite = []Workload{
	{Name: "nbody", What: "Benchmarks Game n-body: steps of the Jovian planets", SmallArg: "8000000", FullArg: "40000000"},
	{Name: "binarytrees", What: "Benchmarks Game binary-trees: allocation-heavy trees", SmallArg: "17", FullArg: "20"},
	{Name: "fannkuch", What: "Benchmarks Game fannkuch-redux: permutations and flips", SmallArg: "10", FullArg: "11"},
	{Name: "mandelbrot", What: "Benchmarks Game mandelbrot: a bitmap of the set", SmallArg: "2800", FullArg: "8000"},
	{Name: "bfs", What: "GAPBS-like breadth-first search of a generated graph", SmallArg: "524288", FullArg: "2097152"},
	{Name: "pagerank", What: "GAPBS-like PageRank of a generated graph", SmallArg: "524288", FullArg: "2097152"},
	{Name: "kv", What: "redis-like key-value store: MiB of 1 KiB values, lookups, deletes, inserts", SmallArg: "128", FullArg: "256"},
	{Name: "infer", What: "llama2.c-like matrix-vector products over seeded weights", SmallArg: "96", FullArg: "640"},
	{Name: "files", What: "appends, seeks and renames in a data directory", SmallArg: "8192", FullArg: "32768", NeedsDir: true},
}

// Lookup finds the workloads of names (the whole suite if names is
// empty), in the suite's order.
func Lookup(names []string) ([]Workload, error) {
	if len(names) == 0 {
		return Suite, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []Workload
	for _, w := range Suite {
		if want[w.Name] {
			out = append(out, w)
			delete(want, w.Name)
		}
	}
	for n := range want {
		return nil, fmt.Errorf("unknown workload %q (the suite: %s)", n, strings.Join(Names(), ", "))
	}
	return out, nil
}

// Names lists the suite's workloads.
func Names() []string {
	var out []string
	for _, w := range Suite {
		out = append(out, w.Name)
	}
	return out
}

// Args are the workload's arguments at size s, after the program name;
// dir is its data directory, if it needs one.
func (w Workload) Args(s Size, dir string) []string {
	args := []string{w.SmallArg}
	if s == Full {
		args[0] = w.FullArg
	}
	if w.NeedsDir {
		args = append(args, dir)
	}
	return args
}

// cflags are both builds' flags: no fused multiply-adds (see the package
// comment), warnings as errors.
var cflags = []string{"-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"}

// BuildNative compiles the workload into a static binary in dir with cc
// (gcc if empty), and returns its path.
func (w Workload) BuildNative(ctx context.Context, dir, cc string) (string, error) {
	if cc == "" {
		cc = "gcc"
	}
	out := filepath.Join(dir, w.Name)
	return out, w.build(ctx, dir, cc, append([]string{"-static", "-o", out}, cflags...), "-lm")
}

// BuildWasm compiles the workload for wasm32-wasi into dir with clang
// (a clang with the WASI sysroot), and returns the module's path.
func (w Workload) BuildWasm(ctx context.Context, dir, clang string) (string, error) {
	out := filepath.Join(dir, w.Name+".wasm")
	return out, w.build(ctx, dir, clang, append([]string{"--target=wasm32-wasi", "-o", out}, cflags...))
}

// build writes the sources into dir and compiles the workload's.
func (w Workload) build(ctx context.Context, dir, compiler string, flags []string, libs ...string) error {
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	ents, err := sources.ReadDir("src")
	if err != nil {
		return err
	}
	for _, e := range ents {
		b, err := sources.ReadFile("src/" + e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(src, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	args := append(append(flags, filepath.Join(src, w.Name+".c")), libs...)
	if out, err := exec.CommandContext(ctx, compiler, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %s %s: %v\n%s", w.Name, compiler, strings.Join(args, " "), err, out)
	}
	return nil
}

var checksumLine = regexp.MustCompile(`(?m)^checksum (\S+) ([0-9a-f]{16})$`)

// Checksum finds the checksum a run of the workload printed.
func (w Workload) Checksum(stdout string) (string, error) {
	m := checksumLine.FindAllStringSubmatch(stdout, -1)
	if len(m) == 0 || m[len(m)-1][1] != w.Name {
		return "", fmt.Errorf("%s printed no checksum", w.Name)
	}
	return m[len(m)-1][2], nil
}
