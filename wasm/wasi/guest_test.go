package wasi_test

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	wazerowasi "github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/podctl/podctl/test/harness"
	"github.com/podctl/podctl/wasm/snapshot"
	"github.com/podctl/podctl/wasm/wasi"
)

// guest is testdata/guest built for wasip1, and guestErr why it is not;
// cguest and cguestErr the same for testdata/cguest, built with clang-14
// and wasi-libc. A test that needs a guest fails when it could not be
// built, or skips when the C toolchain is not installed (see needGuest
// and needCGuest).
var (
	guest, cguest       []byte
	guestErr, cguestErr error
	compCache           wazero.CompilationCache
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wasi-guest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	guest, guestErr = buildGuest(dir)
	cguest, cguestErr = buildCGuest(dir)
	compCache = wazero.NewCompilationCache()
	code := m.Run()
	compCache.Close(context.Background())
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildGuest builds testdata/guest into dir.
func buildGuest(dir string) ([]byte, error) {
	out := filepath.Join(dir, "guest.wasm")
	if err := harness.BuildGoWasm(filepath.Join("testdata", "guest"), out); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

// buildCGuest builds testdata/cguest into dir.
func buildCGuest(dir string) ([]byte, error) {
	out := filepath.Join(dir, "cguest.wasm")
	if err := harness.BuildWasmC(out, "-O1", filepath.Join("testdata", "cguest", "main.c")); err != nil {
		return nil, fmt.Errorf("build the C guest: %w", err)
	}
	return os.ReadFile(out)
}

// needGuest fails t if the guest could not be built.
func needGuest(t *testing.T) {
	t.Helper()
	if guestErr != nil {
		t.Fatal(guestErr)
	}
}

// needCGuest skips t if the C toolchain is not installed, and fails it if
// the C guest could not be built.
func needCGuest(t *testing.T) {
	t.Helper()
	harness.SkipOrFail(t, cguestErr)
}

// result is how a guest run ended.
type result struct {
	stdout, stderr string
	exitCode       uint32
	// err is an error other than the guest's exit.
	err error
}

// runGuest runs the guest in a fresh runtime. instantiateWASI registers a
// WASI host module in it; pause is what the guest's test.pause import
// does (nothing if nil).
func runGuest(t *testing.T, wasm []byte, instantiateWASI func(context.Context, wazero.Runtime) error, mcfg wazero.ModuleConfig, pause func()) error {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(compCache))
	defer r.Close(ctx)
	if err := instantiateWASI(ctx, r); err != nil {
		t.Fatal(err)
	}
	_, err := r.NewHostModuleBuilder("test").
		NewFunctionBuilder().
		WithFunc(func(context.Context) {
			if pause != nil {
				pause()
			}
		}).
		Export("pause").
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	compiled, err := r.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.InstantiateModule(ctx, compiled, mcfg)
	return err
}

// exitCode splits the error of a guest run into its exit code and any
// other error.
func exitCode(err error) (uint32, error) {
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, err
}

// runOurs runs the Go guest under s.
func runOurs(t *testing.T, s *wasi.System, pause func()) result {
	t.Helper()
	return runWasm(t, guest, s, pause)
}

// runWasm runs wasm under s.
func runWasm(t *testing.T, wasm []byte, s *wasi.System, pause func()) result {
	t.Helper()
	err := runGuest(t, wasm, func(ctx context.Context, r wazero.Runtime) error {
		_, err := s.Instantiate(ctx, r)
		return err
	}, wazero.NewModuleConfig(), pause)
	var res result
	res.exitCode, res.err = exitCode(err)
	return res
}

// newSystem returns a System for cfg whose standard output and error go
// to the returned buffers; it is closed with t.
func newSystem(t *testing.T, cfg wasi.Config) (*wasi.System, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cfg.Stdout, cfg.Stderr = &stdout, &stderr
	s, err := wasi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, &stdout, &stderr
}

// entry is what treeOf records of a file.
type entry struct {
	Type    fs.FileMode
	Perm    fs.FileMode
	Data    string
	ModTime int64
}

// treeOf returns the files below dir by path, read with the os package
// alone. Modification times are left out unless withTimes.
func treeOf(t *testing.T, dir string, withTimes bool) map[string]entry {
	t.Helper()
	tree := make(map[string]entry)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := entry{Type: fi.Mode().Type(), Perm: fi.Mode() &^ fs.ModeType}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.Data = string(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.Data = target
			e.Perm = 0 // not portable, and not kept
		}
		if withTimes {
			e.ModTime = fi.ModTime().UnixNano()
		}
		rel, _ := filepath.Rel(dir, p)
		tree[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// diffTrees reports the differences between trees a and b.
func diffTrees(t *testing.T, what string, a, b map[string]entry) {
	t.Helper()
	for p, ea := range a {
		if eb, ok := b[p]; !ok {
			t.Errorf("%s: %s only in the first", what, p)
		} else if ea != eb {
			t.Errorf("%s: %s differs:\n\t%+v\n\t%+v", what, p, ea, eb)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			t.Errorf("%s: %s only in the second", what, p)
		}
	}
}

// seed writes the same initial contents into each of dirs.
func seed(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		must(t, os.WriteFile(filepath.Join(d, "seed.txt"), []byte("seeded\n"), 0o644))
		must(t, os.Mkdir(filepath.Join(d, "seeddir"), 0o755))
		must(t, os.WriteFile(filepath.Join(d, "seeddir", "x"), []byte("x"), 0o600))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// differential runs wasm with args under wazero's WASI and under ours,
// from the same preopen contents: standard output and error, exit code
// and the files left must be identical. It returns our standard output.
func differential(t *testing.T, wasm []byte, args []string, wantExit uint32) string {
	t.Helper()
	env := [][2]string{{"FOO", "bar"}, {"EMPTY", ""}, {"LIST", "a=b:c"}}
	const stdin = "some standard input\n"
	theirsDir, oursDir := t.TempDir(), t.TempDir()
	seed(t, theirsDir, oursDir)

	// wazero's own WASI.
	var tOut, tErr bytes.Buffer
	mcfg := wazero.NewModuleConfig().
		WithArgs(args...).
		WithStdin(strings.NewReader(stdin)).
		WithStdout(&tOut).
		WithStderr(&tErr).
		WithFSConfig(wazero.NewFSConfig().WithDirMount(theirsDir, "/")).
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(crand.Reader)
	for _, kv := range env {
		mcfg = mcfg.WithEnv(kv[0], kv[1])
	}
	theirs := runGuest(t, wasm, func(ctx context.Context, r wazero.Runtime) error {
		_, err := wazerowasi.Instantiate(ctx, r)
		return err
	}, mcfg, nil)
	theirCode, err := exitCode(theirs)
	if err != nil {
		t.Fatalf("under wazero's WASI: %v\nstdout:\n%s", err, tOut.String())
	}

	// Ours.
	var envList []string
	for _, kv := range env {
		envList = append(envList, kv[0]+"="+kv[1])
	}
	s, oOut, oErr := newSystem(t, wasi.Config{
		Args:     args,
		Env:      envList,
		Stdin:    strings.NewReader(stdin),
		Preopens: []wasi.PreopenDir{{GuestPath: "/", HostDir: oursDir}},
	})
	ours := runWasm(t, wasm, s, nil)
	if ours.err != nil {
		t.Fatalf("under ours: %v\nstdout:\n%s", ours.err, oOut.String())
	}

	if theirCode != wantExit || ours.exitCode != wantExit {
		t.Errorf("exit codes: wazero %d, ours %d, want %d", theirCode, ours.exitCode, wantExit)
	}
	if tOut.String() != oOut.String() {
		t.Errorf("standard output differs:\n--- wazero:\n%s\n--- ours:\n%s", tOut.String(), oOut.String())
	}
	if tErr.String() != oErr.String() {
		t.Errorf("standard error differs:\n--- wazero:\n%s\n--- ours:\n%s", tErr.String(), oErr.String())
	}
	diffTrees(t, "final files (wazero, ours)", treeOf(t, theirsDir, false), treeOf(t, oursDir, false))
	return oOut.String()
}

// TestDifferential runs the Go guest under wazero's WASI and under ours.
func TestDifferential(t *testing.T) {
	needGuest(t)
	out := differential(t, guest, []string{"guest", "diff", "an arg with spaces", "ünï©ødé", ""}, 7)
	// The guest must have done what it set out to: no unexpected errors.
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, ": error:") {
			t.Errorf("guest: %s", line)
		}
	}
	for _, want := range []string{
		`read at 6: "world"`,
		`a.txt: "Jello wo" <nil>`,
		"all listed: true",
		"big: 131072 true <nil>",
		`log: "one\ntwo\n"`,
		"monotonic increasing: true slept: true",
		"random non-zero: true <nil>",
		"many: 150 <nil>",
		"mtime: 2001-02-03 04:05:06 +0000 UTC <nil>",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// TestDifferentialC runs the C guest, through wasi-libc, under wazero's
// WASI and under ours.
func TestDifferentialC(t *testing.T) {
	needCGuest(t)
	out := differential(t, cguest, []string{"cguest", "x y"}, 5)
	for _, want := range []string{
		"isatty: 0 0",
		"fgets: from c",
		"append flag: 1",
		"pread: Jello",
		"fstat: size 4 regular 1",
		"entries: 60 first file-00- last renamed",
		"readlink: file-00-",
		"is link: 1",
		"open missing: -1 No such file or directory",
		"rmdir non-empty: -1 Directory not empty",
		"monotonic increasing: 1",
		"entropy: 1 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// errPaused stops the guest once its state is taken.
var errPaused = errors.New("paused by the test")

// fdLine matches the guest's report of a descriptor number.
var fdLine = regexp.MustCompile(`(?m)^fd (\w+) (\d+)$`)

// TestStateRestore takes the state of a guest that opened files and
// paused, restores it into fresh directories, and checks the files, their
// metadata, the descriptor table and the clock, then that a second guest
// sees it all through the restored descriptors.
func TestStateRestore(t *testing.T) {
	needGuest(t)
	rootDir, dataDir := t.TempDir(), t.TempDir()
	populate(t, rootDir)
	cfg := wasi.Config{
		Args: []string{"guest", "pause"},
		Env:  []string{"HOME=/", "X=y"},
		Preopens: []wasi.PreopenDir{
			{GuestPath: "/", HostDir: rootDir},
			{GuestPath: "/data", HostDir: dataDir},
		},
	}
	s, out, _ := newSystem(t, cfg)
	var st snapshot.WASIState
	res := runOurs(t, s, func() {
		var err error
		if st, err = s.State(); err != nil {
			t.Errorf("State: %v", err)
		}
		// State changes nothing: a second one is the same.
		st2, err := s.State()
		if err != nil {
			t.Errorf("second State: %v", err)
		}
		st2.MonotonicNanos = st.MonotonicNanos
		if !reflect.DeepEqual(st, st2) {
			t.Errorf("a second State differs")
		}
		panic(errPaused)
	})
	if !errors.Is(res.err, errPaused) {
		t.Fatalf("guest did not pause: %v (exit %d)\n%s", res.err, res.exitCode, out.String())
	}
	if t.Failed() {
		t.FailNow()
	}
	fds := make(map[string]uint32)
	for _, m := range fdLine.FindAllStringSubmatch(out.String(), -1) {
		n, _ := strconv.ParseUint(m[2], 10, 32)
		fds[m[1]] = uint32(n)
	}
	var guestClock uint64
	if m := regexp.MustCompile(`monotonic (\d+)`).FindStringSubmatch(out.String()); m != nil {
		guestClock, _ = strconv.ParseUint(m[1], 10, 64)
	}
	if len(fds) != 7 || guestClock == 0 || strings.Contains(out.String(), "error") {
		t.Fatalf("guest output:\n%s", out.String())
	}

	// The state itself.
	if !reflect.DeepEqual(st.Args, cfg.Args) || !reflect.DeepEqual(st.Env, cfg.Env) {
		t.Errorf("args %q env %q", st.Args, st.Env)
	}
	if st.MonotonicNanos < guestClock {
		t.Errorf("MonotonicNanos %d is before the guest's reading %d", st.MonotonicNanos, guestClock)
	}
	if st.NextFD != fds["gap"] {
		t.Errorf("NextFD %d, want %d (the closed gap)", st.NextFD, fds["gap"])
	}
	const (
		appendFlag = 1
		rw         = "rw"
	)
	wantFDs := map[string]struct {
		kind          snapshot.FDKind
		preopen       uint32
		path          string
		offset        uint64
		mode          string
		flagsAppended bool
	}{
		"keep":    {snapshot.KindFile, 3, "keep.txt", 5, rw, false},
		"inner":   {snapshot.KindFile, 3, "sub/inner.txt", 3, "r", false},
		"log":     {snapshot.KindFile, 3, "log.txt", 6, "w", true},
		"dir":     {snapshot.KindDir, 3, "sub", 0, "r", false},
		"data":    {snapshot.KindFile, 4, "moved.txt", 21, rw, false},
		"renamed": {snapshot.KindFile, 3, "sub/after-rename.txt", 18, rw, false},
	}
	if len(st.FDs) != len(wantFDs) {
		t.Errorf("%d fds in the state, want %d: %+v", len(st.FDs), len(wantFDs), st.FDs)
	}
	byFD := make(map[uint32]snapshot.FD)
	for i, e := range st.FDs {
		if i > 0 && e.FD <= st.FDs[i-1].FD {
			t.Errorf("fds out of order: %+v", st.FDs)
		}
		byFD[e.FD] = e
	}
	for name, w := range wantFDs {
		e, ok := byFD[fds[name]]
		mode := ""
		if e.Read {
			mode += "r"
		}
		if e.Write {
			mode += "w"
		}
		if !ok || e.Kind != w.kind || e.Preopen != w.preopen || e.Path != w.path || e.Offset != w.offset ||
			mode != w.mode || (e.Flags&appendFlag != 0) != w.flagsAppended {
			t.Errorf("fd %s (%d): %+v, want %+v", name, fds[name], e, w)
		}
	}
	if len(st.Preopens) != 2 || st.Preopens[0].FD != 3 || st.Preopens[0].GuestPath != "/" ||
		st.Preopens[1].FD != 4 || st.Preopens[1].GuestPath != "/data" {
		t.Fatalf("preopens: %+v", st.Preopens)
	}
	var paths []string
	files := make(map[string]snapshot.File)
	for _, f := range st.Preopens[0].Files {
		paths = append(paths, f.Path)
		files[f.Path] = f
	}
	wantPaths := []string{"gap.txt", "keep.txt", "lnk", "log.txt", "ro.txt", "script.sh", "sub", "sub/after-rename.txt", "sub/inner.txt", "tree", "tree/leaf.txt", "tree/sticky", "tree/up"}
	if !reflect.DeepEqual(paths, wantPaths) {
		t.Errorf("files %q, want %q", paths, wantPaths)
	}
	for p, w := range map[string]snapshot.File{
		"script.sh":   {Type: snapshot.Regular, Mode: 0o755, Data: []byte("#!/bin/sh\necho hi\n")},
		"ro.txt":      {Type: snapshot.Regular, Mode: 0o444, Data: []byte("read only")},
		"tree":        {Type: snapshot.Directory, Mode: 0o750},
		"tree/sticky": {Type: snapshot.Directory, Mode: 0o1777},
		"tree/up":     {Type: snapshot.Symlink, Data: []byte("../ro.txt")},
		"lnk":         {Type: snapshot.Symlink, Data: []byte("keep.txt")},
		"keep.txt":    {Type: snapshot.Regular, Mode: 0o600, Data: []byte("0123456789abcdef")},
	} {
		f := files[p]
		if f.Type != w.Type || !bytes.Equal(f.Data, w.Data) || (w.Type != snapshot.Symlink && f.Mode != w.Mode) {
			t.Errorf("%s: %+v, want %+v", p, f, w)
		}
	}
	if f := files["sub/inner.txt"]; f.ModTimeNanos != 1e18+123456789 {
		t.Errorf("sub/inner.txt mtime %d", f.ModTimeNanos)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Restore into fresh directories, the preopens listed the other way
	// round: they are matched by guest path.
	rootDir2, dataDir2 := t.TempDir(), t.TempDir()
	cfg2 := wasi.Config{
		Args: []string{"ignored"},
		Preopens: []wasi.PreopenDir{
			{GuestPath: "/data", HostDir: dataDir2},
			{GuestPath: "/", HostDir: rootDir2},
		},
	}
	var out2 bytes.Buffer
	cfg2.Stdout = &out2
	s2, err := wasi.Restore(cfg2, st)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	diffTrees(t, "root (original, restored)", treeOf(t, rootDir, true), treeOf(t, rootDir2, true))
	diffTrees(t, "data (original, restored)", treeOf(t, dataDir, true), treeOf(t, dataDir2, true))

	st2, err := s2.State()
	if err != nil {
		t.Fatal(err)
	}
	if st2.MonotonicNanos < st.MonotonicNanos {
		t.Errorf("monotonic clock went back: %d after %d", st2.MonotonicNanos, st.MonotonicNanos)
	}
	st2.MonotonicNanos = st.MonotonicNanos
	if !reflect.DeepEqual(normalize(st), normalize(st2)) {
		t.Errorf("state after restore differs:\n%+v\n%+v", normalize(st).FDs, normalize(st2).FDs)
	}
	if t.Failed() {
		t.FailNow()
	}

	// A second guest carries on with the restored descriptors.
	args := []string{"guest", "resume", fmt.Sprintf("clock=%d", st.MonotonicNanos)}
	for name, fd := range fds {
		if name != "gap" {
			args = append(args, fmt.Sprintf("%s=%d", name, fd))
		}
	}
	st.Args = args
	rootDir3, dataDir3 := t.TempDir(), t.TempDir()
	var out3b bytes.Buffer
	cfg3 := wasi.Config{
		Stdout:   &out3b,
		Preopens: []wasi.PreopenDir{{GuestPath: "/", HostDir: rootDir3}, {GuestPath: "/data", HostDir: dataDir3}},
	}
	s3, err := wasi.Restore(cfg3, st)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	res = runOurs(t, s3, nil)
	if res.err != nil || res.exitCode != 0 {
		t.Fatalf("resume guest: %v, exit %d\n%s", res.err, res.exitCode, out3b.String())
	}
	for _, want := range []string{
		"monotonic not before snapshot: true",
		`keep from offset: "56789abcdef" <nil>`,
		`inner from offset: "er contents" <nil>`,
		"dir: [after-rename.txt inner.txt] <nil>",
		fmt.Sprintf("next fd: %d", fds["gap"]),
		`/log.txt: "line1\nline2\n" <nil>`,
		`/data/moved.txt: "in the second preopen, continued" <nil>`,
		`/sub/after-rename.txt: "renamed while open, still" <nil>`,
		`/lnk: "0123456789abcdef" <nil>`,
		"inner mtime: 1000000000123456789 <nil>",
	} {
		if !strings.Contains(out3b.String(), want) {
			t.Errorf("resume guest output lacks %q:\n%s", want, out3b.String())
		}
	}
}

// normalize makes empty file contents nil, for comparison.
func normalize(st snapshot.WASIState) snapshot.WASIState {
	for i := range st.Preopens {
		for j := range st.Preopens[i].Files {
			if len(st.Preopens[i].Files[j].Data) == 0 {
				st.Preopens[i].Files[j].Data = nil
			}
		}
	}
	return st
}

// populate fills dir with files of various modes and times for
// TestStateRestore.
func populate(t *testing.T, dir string) {
	t.Helper()
	p := func(name string) string { return filepath.Join(dir, name) }
	must(t, os.WriteFile(p("script.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(t, os.WriteFile(p("ro.txt"), []byte("read only"), 0o444))
	must(t, os.Mkdir(p("tree"), 0o750))
	must(t, os.WriteFile(p("tree/leaf.txt"), []byte("leaf"), 0o640))
	must(t, os.Mkdir(p("tree/sticky"), 0o777))
	must(t, os.Symlink("../ro.txt", p("tree/up")))
	for _, name := range []string{"script.sh", "ro.txt", "tree/leaf.txt", "tree/sticky", "tree"} {
		must(t, os.Chmod(p(name), map[string]fs.FileMode{
			"script.sh": 0o755, "ro.txt": 0o444, "tree/leaf.txt": 0o640,
			"tree/sticky": 0o777 | fs.ModeSticky, "tree": 0o750,
		}[name]))
		when := time.Date(2020, 1, 2, 3, 4, 5, 600700800, time.UTC)
		must(t, os.Chtimes(p(name), when, when))
	}
}

// TestStateRefusesReplacedFile checks that State fails, rather than
// capture the wrong file, once the file behind an open descriptor is
// replaced or removed on the host.
func TestStateRefusesReplacedFile(t *testing.T) {
	needGuest(t)
	dir, data := t.TempDir(), t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "ro-src.txt"), []byte("src"), 0o600))
	s, out, _ := newSystem(t, wasi.Config{
		Args:     []string{"guest", "pause"},
		Preopens: []wasi.PreopenDir{{GuestPath: "/", HostDir: dir}, {GuestPath: "/data", HostDir: data}},
	})
	res := runOurs(t, s, func() {
		if _, err := s.State(); err != nil {
			t.Errorf("State before: %v", err)
		}
		// Replaced: a new file at the path.
		must(t, os.Rename(filepath.Join(dir, "keep.txt"), filepath.Join(dir, "old-keep.txt")))
		must(t, os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("impostor"), 0o600))
		if _, err := s.State(); !errors.Is(err, wasi.ErrNotMovable) || !strings.Contains(err.Error(), "keep.txt") {
			t.Errorf("State with a replaced file: %v", err)
		} else {
			t.Logf("replaced: %v", err)
		}
		// Unlinked: nothing at the path.
		must(t, os.Remove(filepath.Join(dir, "keep.txt")))
		if _, err := s.State(); !errors.Is(err, wasi.ErrNotMovable) || !strings.Contains(err.Error(), "unlinked") {
			t.Errorf("State with an unlinked file: %v", err)
		} else {
			t.Logf("unlinked: %v", err)
		}
		// Back where it was: movable again.
		must(t, os.Rename(filepath.Join(dir, "old-keep.txt"), filepath.Join(dir, "keep.txt")))
		if _, err := s.State(); err != nil {
			t.Errorf("State after: %v", err)
		}
		// A hard link in the preopen.
		must(t, os.Link(filepath.Join(dir, "ro-src.txt"), filepath.Join(dir, "ro-link.txt")))
		if _, err := s.State(); !errors.Is(err, wasi.ErrNotMovable) || !strings.Contains(err.Error(), "hard link") {
			t.Errorf("State with a hard link: %v", err)
		} else {
			t.Logf("hard link: %v", err)
		}
		panic(errPaused)
	})
	if !errors.Is(res.err, errPaused) {
		t.Fatalf("guest did not pause: %v\n%s", res.err, out.String())
	}
}

// TestConfinement checks that no path or symlink leads a guest out of
// its preopen.
func TestConfinement(t *testing.T) {
	needGuest(t)
	top := t.TempDir()
	outside, pre := filepath.Join(top, "outside"), filepath.Join(top, "pre")
	must(t, os.Mkdir(outside, 0o755))
	must(t, os.Mkdir(pre, 0o755))
	must(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("TOP SECRET"), 0o644))
	must(t, os.WriteFile(filepath.Join(pre, "inside.txt"), []byte("inside"), 0o644))
	must(t, os.Mkdir(filepath.Join(pre, "sub"), 0o755))
	must(t, os.Symlink(outside, filepath.Join(pre, "abs")))
	must(t, os.Symlink("../outside/secret", filepath.Join(pre, "rel")))
	must(t, os.Symlink("inside.txt", filepath.Join(pre, "ok")))

	s, out, _ := newSystem(t, wasi.Config{
		Args:     []string{"guest", "confine"},
		Preopens: []wasi.PreopenDir{{GuestPath: "/", HostDir: pre}},
	})
	res := runOurs(t, s, nil)
	if res.err != nil || res.exitCode != 0 {
		t.Fatalf("guest: %v, exit %d\n%s", res.err, res.exitCode, out.String())
	}
	const eperm = "errno 63"
	want := map[string]string{
		"read via absolute symlink":          eperm,
		"read via relative escaping symlink": eperm,
		"read via inside symlink":            "<nil>",
		"openat ../":                         eperm,
		"openat absolute":                    eperm,
		"openat sub/../../":                  eperm,
		"openat sub/../inside":               "<nil>",
		"open sub":                           "<nil>",
		"openat from sub ../../":             eperm,
		"openat from sub ../inside":          eperm, // as wazero: ".." may not climb out of the directory given
		"symlink to /":                       "<nil>",
		"read through guest symlink to /":    eperm,
		"symlink to ..":                      "<nil>",
		"read through guest symlink to ..":   eperm,
		"stat abs":                           eperm,
		"lstat abs":                          "<nil>",
		"mkdir through escaping symlink":     eperm,
		"create through escaping symlink":    eperm,
		"rename into escape":                 eperm,
		"link out":                           eperm,
		"remove through escape":              eperm,
	}
	got := make(map[string]string)
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if strings.Contains(line, "TOP SECRET") {
			t.Errorf("leaked: %s", line)
		}
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, "opened") && !strings.HasPrefix(line, "content") {
			got[k] = v
		}
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	if names, _ := os.ReadDir(outside); len(names) != 1 {
		t.Errorf("outside directory changed: %v", names)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}
}

// TestInstantiateAll checks that every WASI preview 1 function is there,
// with the signature wazero's gives it.
func TestInstantiateAll(t *testing.T) {
	ctx := context.Background()
	signatures := func(instantiate func(wazero.Runtime) error) map[string]string {
		r := wazero.NewRuntime(ctx)
		defer r.Close(ctx)
		if err := instantiate(r); err != nil {
			t.Fatal(err)
		}
		sigs := make(map[string]string)
		for name, def := range r.Module(wasi.ModuleName).ExportedFunctionDefinitions() {
			sigs[name] = fmt.Sprint(def.ParamTypes(), def.ResultTypes())
		}
		return sigs
	}
	theirs := signatures(func(r wazero.Runtime) error { _, err := wazerowasi.Instantiate(ctx, r); return err })
	s, err := wasi.New(wasi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ours := signatures(func(r wazero.Runtime) error { _, err := s.Instantiate(ctx, r); return err })
	if len(theirs) != 46 {
		t.Errorf("wazero has %d functions", len(theirs))
	}
	for name, sig := range theirs {
		if ours[name] != sig {
			t.Errorf("%s: ours %q, wazero's %q", name, ours[name], sig)
		}
	}
	for name := range ours {
		if _, ok := theirs[name]; !ok {
			t.Errorf("%s is ours only", name)
		}
	}
}
