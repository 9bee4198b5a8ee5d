package compare

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/podctl/podctl/wasm/prepare"
	"github.com/podctl/podctl/wasm/vessel"
	"github.com/podctl/podctl/wasm/wasi"
)

// runTime is the uninterrupted run time a path checkpoints a fraction
// of: the native binary's on the host, or its pod's, or its vessel
// pod's.
func (b *built) runTime(path string) time.Duration {
	// A migration checkpoints its path's pod.
	path = strings.TrimPrefix(path, pathMigrate)
	switch {
	case path == PathVesselCRIU || path == PathVesselSnapshot || Emulated(path):
		return b.vesselTime
	case path == PathPodctl:
		return b.podTime
	case path == PathPodman:
		return b.podmanTime
	}
	return b.nativeTime
}

// references makes the three uninterrupted references of b and returns
// them, to be measured with the paths. Before, it runs b once
// uninterrupted natively (the checksum every path must print), as the
// prepared module (a warm compilation cache), in a pod and in a vessel
// pod (the run times their checkpoints take a fraction of).
func (r *Runner) references(ctx context.Context, b *built) ([]path, error) {
	module, err := os.ReadFile(b.wasm)
	if err != nil {
		return nil, err
	}
	cache := prepare.Cache{Dir: filepath.Join(r.Work, "prepared")}
	prepared, err := cache.Prepare(ctx, module)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", b.Name, err)
	}
	b.moduleBytes = len(prepared.Bytes)
	wz := wazero.NewCompilationCache()
	refs := []path{
		nativeRun{r},
		plainWasm{r: r, module: module, cache: wz},
		preparedWasm{r: r, module: prepared, cache: wz},
	}
	m, out, err := refs[0].measure(ctx, b, 0, -1)
	if err != nil {
		return nil, err
	}
	if b.checksum, err = b.Checksum(out); err != nil {
		return nil, fmt.Errorf("%w; it printed:\n%s", err, tail(out))
	}
	b.nativeTime = millis(m["run-ms"])
	// A first run of the prepared module warms the compilation cache.
	if _, _, err = refs[2].measure(ctx, b, 0, -1); err != nil {
		return nil, err
	}
	// Pods checkpoint a fraction of their own run, as a checkpoint sees
	// it (see podRunTime): the shortest of three, the first of which
	// prepares the vessel's module and the second may still compile it
	// (the shortest lands every checkpoint before the end of any run at
	// least as long).
	b.podTime, b.vesselTime, b.podmanTime = math.MaxInt64, math.MaxInt64, math.MaxInt64
	for i := 0; i < 3; i++ {
		name := podName(b, "pod", -1)
		d, err := r.podRunTime(ctx, b, name, nativePodCreate(b, name))
		if err != nil {
			return nil, err
		}
		b.podTime = min(b.podTime, d)
		data, err := r.dataDir(b, "vessel", -1)
		if err != nil {
			return nil, err
		}
		name = podName(b, "wasm", -1)
		if d, err = r.podRunTime(ctx, b, name, vesselPodCreate(b, name, data)); err != nil {
			return nil, err
		}
		b.vesselTime = min(b.vesselTime, d)
		if r.Podman.OK {
			if d, err = (podmanContainer{r}).runTime(ctx, b); err != nil {
				return nil, err
			}
			b.podmanTime = min(b.podmanTime, d)
		}
	}
	return refs, nil
}

// nativeRun runs the native binary on the host, uninterrupted.
type nativeRun struct{ r *Runner }

func (nativeRun) name() string { return PathNative }

func (n nativeRun) measure(ctx context.Context, b *built, _ time.Duration, run int) (map[string]float64, string, error) {
	data, err := n.r.dataDir(b, PathNative, run)
	if err != nil {
		return nil, "", err
	}
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, b.native, b.Args(b.size, data)...)
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, "", fmt.Errorf("%s: %w", b.native, err)
	}
	m := map[string]float64{"run-ms": msSince(start)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m["footprint-bytes"] = float64(ru.Maxrss) * 1024
	}
	return m, stdout.String(), nil
}

// plainWasm runs the Wasm build as it came from clang under stock
// wazero, with wazero's own WASI and default configuration: the
// baseline of the prepared module's overhead. Compilation is not timed.
type plainWasm struct {
	r      *Runner
	module []byte
	cache  wazero.CompilationCache
}

func (plainWasm) name() string { return PathWasmPlain }

func (p plainWasm) measure(ctx context.Context, b *built, _ time.Duration, run int) (map[string]float64, string, error) {
	data, err := p.r.dataDir(b, PathWasmPlain, run)
	if err != nil {
		return nil, "", err
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(p.cache))
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	compiled, err := rt.CompileModule(ctx, p.module)
	if err != nil {
		return nil, "", fmt.Errorf("compile %s: %w", b.Name, err)
	}
	var stdout bytes.Buffer
	cfg := wazero.NewModuleConfig().WithStdout(&stdout).WithStderr(os.Stderr).WithName("").
		WithArgs(append([]string{b.Name}, b.Args(b.size, "/data")...)...).
		WithFSConfig(wazero.NewFSConfig().WithDirMount(data, "/data"))
	start := time.Now()
	_, err = rt.InstantiateModule(ctx, compiled, cfg)
	elapsed := msSince(start)
	var exit *sys.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 0) {
		return nil, "", fmt.Errorf("%s under wazero: %w", b.Name, err)
	}
	return map[string]float64{"run-ms": elapsed}, stdout.String(), nil
}

// preparedWasm runs the prepared module as a vessel pod's supervisor
// does (podctl's WASI, allocator and stack), in this process:
// compilation is not timed.
type preparedWasm struct {
	r      *Runner
	module *prepare.Prepared
	cache  wazero.CompilationCache
}

func (preparedWasm) name() string { return PathWasmPrepared }

func (p preparedWasm) measure(ctx context.Context, b *built, _ time.Duration, run int) (map[string]float64, string, error) {
	data, err := p.r.dataDir(b, PathWasmPrepared, run)
	if err != nil {
		return nil, "", err
	}
	var stdout bytes.Buffer
	cfg := vessel.Config{
		Module:           p.module,
		CompilationCache: p.cache,
		WASI: wasi.Config{
			Args:     append([]string{b.Name}, b.Args(b.size, "/data")...),
			Stdout:   &stdout,
			Stderr:   os.Stderr,
			Preopens: []wasi.PreopenDir{{GuestPath: "/data", HostDir: data}},
		},
	}
	start := time.Now()
	v, err := vessel.Start(ctx, cfg)
	if err != nil {
		return nil, "", fmt.Errorf("start %s prepared: %w", b.Name, err)
	}
	defer v.Close(context.WithoutCancel(ctx))
	code, err := v.Wait(ctx)
	elapsed := msSince(start)
	if err != nil || code != 0 {
		return nil, "", fmt.Errorf("%s prepared: exit %d: %v", b.Name, code, err)
	}
	return map[string]float64{"run-ms": elapsed}, stdout.String(), nil
}

// dataDir makes a fresh, empty data directory for one run of b on path
// (run -1: a warm-up).
func (r *Runner) dataDir(b *built, path string, run int) (string, error) {
	dir := filepath.Join(r.Work, "data", b.Name, fmt.Sprintf("%s-%d", path, run))
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("data directory: %w", err)
	}
	return dir, nil
}

// msSince is the time since start in milliseconds.
func msSince(start time.Time) float64 { return ms(time.Since(start)) }

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// millis is the duration of v milliseconds.
func millis(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
