package workloads

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/podctl/podctl/test/harness"
)

// TestNativeAndWasmAgree builds every workload natively and for
// wasm32-wasi, runs both at the small size (the Wasm build under stock
// wazero and its own WASI, an implementation independent of podctl's),
// and checks that they print the same checksum.
func TestNativeAndWasmAgree(t *testing.T) {
	clang, err := harness.WasmClang()
	harness.SkipOrFail(t, err)
	harness.NeedTool(t, "gcc", "gcc")
	ctx := context.Background()
	dir := t.TempDir()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	for _, w := range Suite {
		t.Run(w.Name, func(t *testing.T) {
			native, err := w.BuildNative(ctx, dir, "")
			if err != nil {
				t.Fatal(err)
			}
			module, err := w.BuildWasm(ctx, dir, clang)
			if err != nil {
				t.Fatal(err)
			}
			nativeDir, wasmDir := t.TempDir(), t.TempDir()
			out, err := exec.Command(native, w.Args(Small, nativeDir)...).Output()
			if err != nil {
				t.Fatalf("%s: %v", native, err)
			}
			want, err := w.Checksum(string(out))
			if err != nil {
				t.Fatal(err)
			}

			bin, err := os.ReadFile(module)
			if err != nil {
				t.Fatal(err)
			}
			var stdout bytes.Buffer
			cfg := wazero.NewModuleConfig().WithStdout(&stdout).WithStderr(os.Stderr).
				WithArgs(append([]string{w.Name}, w.Args(Small, "/data")...)...)
			if w.NeedsDir {
				cfg = cfg.WithFSConfig(wazero.NewFSConfig().WithDirMount(wasmDir, "/data"))
			}
			if _, err := rt.InstantiateWithConfig(ctx, bin, cfg.WithName("")); err != nil {
				if exit, ok := err.(*sys.ExitError); !ok || exit.ExitCode() != 0 {
					t.Fatalf("%s under wazero: %v", module, err)
				}
			}
			got, err := w.Checksum(stdout.String())
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("checksum: Wasm %s, native %s", got, want)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	ws, err := Lookup([]string{"kv", "nbody"})
	if err != nil || len(ws) != 2 || ws[0].Name != "nbody" || ws[1].Name != "kv" {
		t.Fatalf("Lookup(kv, nbody) = %v, %v; want nbody, kv in the suite's order", ws, err)
	}
	if _, err := Lookup([]string{"nbody", "redis"}); err == nil {
		t.Fatal("Lookup of an unknown workload succeeded")
	}
	if ws, _ := Lookup(nil); len(ws) != len(Suite) {
		t.Fatalf("Lookup() = %d workloads, want the suite's %d", len(ws), len(Suite))
	}
}
