package harness

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
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

// wasmToolchainPackages are the Debian packages of the WASI C toolchain.
const wasmToolchainPackages = "clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32"

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
// name. When the WASI C toolchain is not installed, its error wraps
// ErrToolMissing (see WasmClang). test/workloads/wasm/README.md describes
// the workloads.
func BuildWasmWorkloads(dir string) (map[string]WasmWorkload, error) {
	src := filepath.Join(WasmWorkloadsDir(), "testdata")
	out := make(map[string]WasmWorkload)
	for _, c := range wasmC {
		w := c.wl
		w.Name = c.name
		w.Path = filepath.Join(dir, c.name+".wasm")
		args := []string{"-O2", "-Wall", "-Wextra", "-Werror", "-Wl,--strip-debug"}
		args = append(args, c.flags...)
		args = append(args, filepath.Join(src, c.name+".c"))
		if err := BuildWasmC(w.Path, args...); err != nil {
			return nil, fmt.Errorf("build %s: %w", c.name, err)
		}
		out[w.Name] = w
	}
	w := WasmWorkload{Name: "gowork", Path: filepath.Join(dir, "gowork.wasm"), NeedsData: true}
	if err := BuildGoWasm(filepath.Join(src, "gowork"), w.Path); err != nil {
		return nil, err
	}
	out[w.Name] = w
	return out, nil
}

var (
	wasmClangOnce sync.Once
	wasmClang     string
	wasmClangErr  error
)

// wasmProbe is the program WasmClang builds: it needs every part of the
// toolchain (wasi-libc's headers, crt1.o and libc, compiler-rt's
// builtins, wasm-ld) and nothing of the tests'.
const wasmProbe = "#include <stdio.h>\nint main(void) { puts(\"probe\"); return 0; }\n"

// WasmClang returns the path of the clang-14 that builds C for
// wasm32-wasi, once it has built and linked a program that only prints.
// When clang-14 is not on PATH, or cannot build that program (wasi-libc,
// compiler-rt's wasm32 builtins or wasm-ld is not installed), its error
// wraps ErrToolMissing: the tests' own sources have no part in that
// verdict, so that an error of theirs fails a test rather than skips it.
// The verdict is reached once per process.
func WasmClang() (string, error) {
	wasmClangOnce.Do(func() { wasmClang, wasmClangErr = probeWasmClang() })
	return wasmClang, wasmClangErr
}

func probeWasmClang() (string, error) {
	clang, err := LookTool("clang-14", "clang-14")
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "wasm-probe-")
	if err != nil {
		return "", fmt.Errorf("probe the WASI toolchain: %w", err)
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(clang, "--target=wasm32-wasi", "-x", "c", "-o", filepath.Join(dir, "probe.wasm"), "-")
	cmd.Stdin = strings.NewReader(wasmProbe)
	if out, err := cmd.CombinedOutput(); err != nil {
		part := wasmMissingTool(string(out))
		if part == "" {
			part = "a part"
		}
		return "", fmt.Errorf("%w: the WASI toolchain lacks %s: clang-14 cannot build a program that only prints (packages %s): %v\n%s",
			ErrToolMissing, part, wasmToolchainPackages, err, out)
	}
	return clang, nil
}

// BuildWasmC compiles and links C for wasm32-wasi into out with clang-14:
// args are the flags and the sources. Its error wraps ErrToolMissing when
// the toolchain is not installed (see WasmClang), and holds clang's
// output when the build fails.
func BuildWasmC(out string, args ...string) error {
	clang, err := WasmClang()
	if err != nil {
		return err
	}
	argv := append([]string{"--target=wasm32-wasi", "-o", out}, args...)
	if b, err := exec.Command(clang, argv...).CombinedOutput(); err != nil {
		return fmt.Errorf("clang-14 %s: %v\n%s", strings.Join(argv, " "), err, b)
	}
	return nil
}

// BuildGoWasm builds the Go program in dir for GOOS=wasip1 GOARCH=wasm into
// out. It needs no tool but go, which go test puts on PATH: any error is
// a failure.
func BuildGoWasm(dir, out string) error {
	out, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for wasip1: %v\n%s", dir, err, b)
	}
	return nil
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

// wasmMissingTool recognizes, in clang's output for the probe of
// WasmClang, the part of the toolchain that is not installed.
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
