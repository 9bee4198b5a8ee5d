package harness

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// WasmWorkload is a built WASI test program.
type WasmWorkload struct {
	// Name is the workload's name: its source's base name ("recurse"
	// for recurse.c, "gowork" for the Go program).
	Name string
	// Path is the built module (a .wasm file).
	Path string
	// Args are its arguments after the program name (argv[1:]).
	Args []string
	// NeedsData says it wants a preopened, writable directory the guest
	// knows as /data (empty at start).
	NeedsData bool
	// WantExit is the exit code of a correct run.
	WantExit int
}

// ErrNoWasmToolchain is what BuildWasmWorkloads's error wraps when a tool
// it needs is not installed: callers skip on errors.Is(err,
// ErrNoWasmToolchain) and fail on anything else.
var ErrNoWasmToolchain = errors.New("WebAssembly toolchain missing (apt-get install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32)")

// WasmDataDir is the name under which workloads with NeedsData expect
// their preopened directory.
const WasmDataDir = "/data"

// wasmC lists the C workloads: test/workloads/wasm/testdata/NAME.c, with their
// extra link flags. README.md there describes each.
var wasmC = []struct {
	name  string
	flags []string
	wl    WasmWorkload
}{
	{name: "recurse", wl: WasmWorkload{WantExit: 3}},
	{name: "heap"},
	{name: "files", wl: WasmWorkload{Args: []string{WasmDataDir}, NeedsData: true}},
	// 50,000 frames of recursion need more than the default 64 KiB stack.
	{name: "deep", flags: []string{"-Wl,-z,stack-size=8388608"}},
}

// WasmWorkloadsDir is the directory holding the workloads' sources.
func WasmWorkloadsDir() string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "workloads", "wasm")
}

// BuildWasmWorkloads compiles every workload into dir and returns them by
// name. It returns an error naming the missing tool when clang-14/wasi-libc
// is absent, so callers can skip: that error wraps ErrNoWasmToolchain.
// test/workloads/wasm/README.md describes the workloads.
func BuildWasmWorkloads(dir string) (map[string]WasmWorkload, error) {
	src := WasmWorkloadsDir()
	clang, err := exec.LookPath("clang-14")
	if err != nil {
		return nil, fmt.Errorf("%w: clang-14 not on PATH", ErrNoWasmToolchain)
	}
	out := make(map[string]WasmWorkload)
	for _, c := range wasmC {
		w := c.wl
		w.Name = c.name
		w.Path = filepath.Join(dir, c.name+".wasm")
		args := []string{"--target=wasm32-wasi", "-O2", "-Wall", "-Wextra", "-Werror", "-Wl,--strip-debug"}
		args = append(args, c.flags...)
		args = append(args, "-o", w.Path, filepath.Join(src, "testdata", c.name+".c"))
		cmd := exec.Command(clang, args...)
		var o bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &o
		if err := cmd.Run(); err != nil {
			if tool := wasmMissingTool(o.String()); tool != "" {
				return nil, fmt.Errorf("%w: %s (clang-14: %s)", ErrNoWasmToolchain, tool, strings.TrimSpace(o.String()))
			}
			return nil, fmt.Errorf("build %s: %v\n%s", c.name, err, o.Bytes())
		}
		out[w.Name] = w
	}

	goTool, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("%w: go not on PATH", ErrNoWasmToolchain)
	}
	w := WasmWorkload{Name: "gowork", Path: filepath.Join(dir, "gowork.wasm"), NeedsData: true}
	cmd := exec.Command(goTool, "build", "-trimpath", "-o", w.Path, ".")
	cmd.Dir = filepath.Join(src, "testdata", "gowork")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if o, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build gowork: %v\n%s", err, o)
	}
	out[w.Name] = w
	return out, nil
}

// Golden returns what a correct run of w prints on stdout and, for a
// workload with NeedsData, the WasmTree listing of what it leaves in /data
// ("" otherwise). They are kept in test/workloads/wasm/testdata/golden
// (go test ./test/workloads/wasm -wasm.update rewrites them).
func (w WasmWorkload) Golden() (stdout, data string, err error) {
	dir := filepath.Join(WasmWorkloadsDir(), "testdata", "golden")
	b, err := os.ReadFile(filepath.Join(dir, w.Name+".stdout"))
	if err != nil {
		return "", "", err
	}
	if w.NeedsData {
		d, err := os.ReadFile(filepath.Join(dir, w.Name+".data"))
		if err != nil {
			return "", "", err
		}
		data = string(d)
	}
	return string(b), data, nil
}

// wasmMissingTool recognizes, in clang's output, the part of the
// toolchain that is not installed.
func wasmMissingTool(out string) string {
	switch {
	case strings.Contains(out, "libclang_rt.builtins-wasm32"):
		return "libclang_rt.builtins-wasm32.a (libclang-rt-14-dev-wasm32)"
	case strings.Contains(out, ".h' file not found"), strings.Contains(out, "crt1.o"), strings.Contains(out, "library -lc"):
		return "wasi-libc"
	case strings.Contains(out, "wasm-ld") && (strings.Contains(out, "doesn't exist") || strings.Contains(out, "not found")):
		return "wasm-ld (lld-14)"
	case strings.Contains(out, "unknown target"), strings.Contains(out, "No available targets"):
		return "clang-14 with the WebAssembly target"
	}
	return ""
}

// WasmTree lists what a vessel left in a preopened directory, one line per
// entry below dir in lexical order: "d PATH" for a directory, "f PATH SIZE
// SHA256" for a regular file, "l PATH -> TARGET" for a symlink. Two
// directories with the same listing hold the same names, types and
// contents (permissions and times are left out).
func WasmTree(dir string) (string, error) {
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch t := d.Type(); {
		case t.IsDir():
			fmt.Fprintf(&b, "d %s\n", rel)
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "l %s -> %s\n", rel, target)
		case t.IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "f %s %d %x\n", rel, len(data), sha256.Sum256(data))
		default:
			return fmt.Errorf("%s: unexpected file type %v", path, t)
		}
		return nil
	})
	return b.String(), err
}
