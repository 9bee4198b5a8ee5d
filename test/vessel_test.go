package test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
	"github.com/podctl/podctl/wasm/snapshot"
)

// Vessel pods: WASI workloads (test/workloads/wasm) run, checkpointed,
// restored and migrated across ISAs, checked against the output of an
// uninterrupted run (the workloads' golden files).

var (
	wasmOnce sync.Once
	wasmWLs  map[string]harness.WasmWorkload
	wasmErr  error
	wasmDir  string // removed by TestMain
)

// wasmWorkloads builds the workloads once per test binary.
func wasmWorkloads(t testing.TB) map[string]harness.WasmWorkload {
	t.Helper()
	wasmOnce.Do(func() {
		dir, err := os.MkdirTemp("", "podctl-wasm-")
		if err != nil {
			wasmErr = err
			return
		}
		wasmDir = dir
		wasmWLs, wasmErr = harness.BuildWasmWorkloads(dir)
	})
	harness.SkipOrFail(t, wasmErr)
	return wasmWLs
}

// vesselDir is a vessel pod's directory on host h: a plain vessel pod's,
// or the one inside the writable layer of a native pod housing a vessel
// (whose in-pod name may differ from the pod's, after a restore under
// another name). It does not exist if h has no such pod.
func vesselDir(h *harness.Host, name string) string {
	plain := filepath.Join(h.Root, "vessels", name)
	if _, err := os.Stat(plain); err == nil {
		return plain
	}
	inPod, _ := filepath.Glob(filepath.Join(h.Root, "pods", name, "upper", ".vessel", "vessels", "*"))
	if len(inPod) == 1 {
		return inPod[0]
	}
	return plain
}

// isHoused reports whether the vessel pod name on h is housed in a native
// pod, which podctl makes when it runs as root on a host with native pods.
func isHoused(h *harness.Host, name string) bool {
	return h.Inspect(name).Spec.Vessel != nil
}

// vesselStdout is what a vessel pod on h has printed so far.
func vesselStdout(h *harness.Host, name string) string {
	b, _ := os.ReadFile(filepath.Join(vesselDir(h, name), "stdout.log"))
	return string(b)
}

// createVessel starts workload wl as vessel pod name on h, its /data (if
// it needs one) a copy of an empty directory.
func createVessel(t testing.TB, h *harness.Host, wl harness.WasmWorkload, name string, env ...string) {
	t.Helper()
	args := []string{"create", "--name", name, "--wasm", wl.Path}
	if wl.NeedsData {
		args = append(args, "--dir", t.TempDir()+":"+harness.WasmDataDir)
	}
	args = append(append(args, "--"), wl.Args...)
	cmd := h.Command(h.PodctlArgv(args...)...)
	cmd.Env = append(os.Environ(), env...)
	if r := h.RunCmd(cmd); r.Code != 0 {
		t.Fatalf("podctl %s: exit %d: %s", strings.Join(args, " "), r.Code, r.Stderr)
	}
}

// waitVesselExit polls until the vessel pod has exited and returns its
// exit code.
func waitVesselExit(t *testing.T, h *harness.Host, name string, timeout time.Duration) int {
	t.Helper()
	var code int
	harness.Eventually(t, timeout, func() error {
		p := h.Inspect(name)
		if p.Status != "exited" || p.ExitCode == nil {
			return fmt.Errorf("vessel %s is %s", name, p.Status)
		}
		code = *p.ExitCode
		return nil
	})
	return code
}

// checkLikeGolden compares a finished vessel pod with an uninterrupted run.
func checkLikeGolden(t *testing.T, h *harness.Host, wl harness.WasmWorkload, name string, code int) {
	t.Helper()
	wantOut, wantData, err := wl.Golden()
	if err != nil {
		t.Fatal(err)
	}
	if got := vesselStdout(h, name); got != wantOut {
		t.Errorf("%s: stdout differs from an uninterrupted run:\n got %q\nwant %q", wl.Name, tail(got), tail(wantOut))
	}
	if code != wl.WantExit {
		t.Errorf("%s: exit code %d, want %d", wl.Name, code, wl.WantExit)
	}
	if wl.NeedsData {
		got, err := harness.WasmTree(filepath.Join(vesselDir(h, name), "dirs", "0"))
		if err != nil {
			t.Fatal(err)
		}
		if got != wantData {
			t.Errorf("%s: /data differs from an uninterrupted run:\n got %s\nwant %s", wl.Name, got, wantData)
		}
	}
}

func tail(s string) string {
	if len(s) > 300 {
		return "..." + s[len(s)-300:]
	}
	return s
}

// lines counts complete lines.
func lines(s string) int { return strings.Count(s, "\n") }

// waitNewLine polls until the vessel pod on h has printed more than n lines.
func waitNewLine(t testing.TB, h *harness.Host, name string, n int, timeout time.Duration) int {
	t.Helper()
	var got int
	harness.Eventually(t, timeout, func() error {
		if got = lines(vesselStdout(h, name)); got <= n {
			return fmt.Errorf("vessel %s has printed %d lines, waiting for more than %d", name, got, n)
		}
		return nil
	})
	return got
}

// TestVesselCheckpointRestore runs every workload as a vessel pod, stops
// it mid-run into a snapshot (the pod then is "checkpointed"), restores
// it, and checks that it finishes exactly like an uninterrupted run; a
// --leave-running checkpoint restored under another name finishes alike.
func TestVesselCheckpointRestore(t *testing.T) {
	wls := wasmWorkloads(t)
	h := newHost(t)
	for _, name := range []string{"recurse", "heap", "files", "deep", "gowork"} {
		wl := wls[name]
		t.Run(name, func(t *testing.T) {
			pod := "v-" + name
			// The interpreter makes the run last seconds, so the
			// checkpoints surely fall in the middle of it.
			createVessel(t, h, wl, pod, "PODCTL_WASM_ENGINE=interpreter")
			n := waitNewLine(t, h, pod, 2, 30*time.Second)
			if !isHoused(h, pod) {
				t.Fatalf("podctl as root made an unhoused vessel pod")
			}
			// A portable snapshot of the running vessel, and then a
			// CRIU checkpoint of the pod housing it.
			snap := filepath.Join(t.TempDir(), "copy.snap")
			h.MustPodctl("checkpoint", "--portable", "--leave-running", "-o", snap, pod)
			waitNewLine(t, h, pod, n, 30*time.Second)
			h.MustPodctl("checkpoint", pod)
			if p := h.Inspect(pod); p.Status != "checkpointed" {
				t.Fatalf("after checkpoint the vessel is %s", p.Status)
			}
			h.MustPodctl("restore", pod)
			checkLikeGolden(t, h, wl, pod, waitVesselExit(t, h, pod, 2*time.Minute))

			copyPod := pod + "-copy"
			h.MustPodctl("restore", "--name", copyPod, snap)
			checkLikeGolden(t, h, wl, copyPod, waitVesselExit(t, h, copyPod, 2*time.Minute))
		})
	}
}

// TestVesselMigratesAcrossISAs moves every workload, mid-computation,
// amd64 → arm64 → s390x → riscv64 → ppc64le → amd64: the other ISAs' docks
// are podctl built for them, run by qemu-user. On each foreign dock the
// test waits for the guest to print a new line before moving it on, so
// every ISA runs part of the computation. The result must be byte-for-byte
// an uninterrupted run's.
func TestVesselMigratesAcrossISAs(t *testing.T) {
	harness.RequireRoot(t)
	wls := wasmWorkloads(t)
	isas := harness.ForeignISAs
	lan := harness.NewLAN(t, podctlBin, 1+len(isas))
	dir := t.TempDir()
	for i, isa := range isas {
		launcher, err := harness.BuildForeign(dir, isa)
		harness.SkipOrFail(t, err)
		lan.Hosts[1+i].Binary = launcher
	}
	pki := lan.PKI(t)
	lan.StartDock(t, 0, pki)
	// Foreign docks run guests interpreted even on arm64, where wazero
	// has a compiler: compiled, a workload under qemu could finish before
	// a qemu-run podctl gets to move it on (TestVesselOnArm64Compiler
	// covers the compiler there).
	for i := 1; i < len(lan.Hosts); i++ {
		lan.StartDockEnv(t, i, pki, "PODCTL_WASM_ENGINE=interpreter")
	}
	route := []int{1, 2, 3, 4, 0} // host indexes after host 0
	for _, name := range []string{"recurse", "heap", "files", "deep", "gowork"} {
		wl := wls[name]
		t.Run(name, func(t *testing.T) {
			pod := "m-" + name
			// The first slice runs interpreted too, so that it lasts.
			createVessel(t, lan.Hosts[0], wl, pod, "PODCTL_WASM_ENGINE=interpreter")
			from, seen := 0, 0
			for _, to := range route {
				seen = waitNewLine(t, lan.Hosts[from], pod, seen, 2*time.Minute)
				r := lan.Hosts[from].Podctl("migrate", pod, "--to", lan.DockAddr(to), "--pki", pki, "--cert", "node", "--json")
				if r.Code != 0 {
					t.Fatalf("migrate %s from host %d to host %d: exit %d: %s", pod, from, to, r.Code, r.Stderr)
				}
				if _, err := os.Stat(vesselDir(lan.Hosts[from], pod)); !os.IsNotExist(err) {
					t.Fatalf("after migrating away, host %d still has the vessel (%v)", from, err)
				}
				from = to
			}
			h := lan.Hosts[0]
			checkLikeGolden(t, h, wl, pod, waitVesselExit(t, h, pod, 5*time.Minute))
		})
	}
}

// TestVesselMigrationPicksPath checks how a vessel pod migrates: housed
// in a native pod (podctl runs as root here), it goes through CRIU to a
// dock of its own ISA and as a portable snapshot to a dock of another
// ISA with --via auto, as a portable snapshot between two amd64 hosts with
// --via wasm, and --via criu to the other ISA is refused. A C and a Go
// guest each make the trip amd64 → amd64 (criu) → amd64 (wasm) → arm64
// (wasm) → amd64 (wasm, arriving housed) → amd64 (criu), printing on
// every host, and finish exactly like an uninterrupted run.
func TestVesselMigrationPicksPath(t *testing.T) {
	harness.RequireRoot(t)
	wls := wasmWorkloads(t)
	lan := harness.NewLAN(t, podctlBin, 3)
	launcher, err := harness.BuildForeign(t.TempDir(), harness.ForeignISAs[0])
	harness.SkipOrFail(t, err)
	lan.Hosts[2].Binary = launcher
	pki := lan.PKI(t)
	// Guests run interpreted everywhere, so that they last the trip.
	for i := range lan.Hosts {
		lan.StartDockEnv(t, i, pki, "PODCTL_WASM_ENGINE=interpreter")
	}
	type hop struct {
		to       int
		via, got string
	}
	route := []hop{{1, "auto", "criu"}, {0, "wasm", "wasm"}, {2, "auto", "wasm"}, {1, "auto", "wasm"}, {0, "auto", "criu"}}
	for _, name := range []string{"recurse", "gowork"} {
		wl := wls[name]
		t.Run(name, func(t *testing.T) {
			pod := "p-" + name
			createVessel(t, lan.Hosts[0], wl, pod, "PODCTL_WASM_ENGINE=interpreter")
			r := lan.Hosts[0].Podctl("migrate", pod, "--via", "criu", "--to", lan.DockAddr(2), "--pki", pki, "--cert", "node")
			if r.Code == 0 || !strings.Contains(r.Stderr, "use --via wasm or auto") || lines(r.Stderr) != 1 {
				t.Fatalf("--via criu to the arm64 dock: exit %d: %q; want one line refusing it", r.Code, r.Stderr)
			}
			from, seen := 0, 0
			for _, h := range route {
				seen = waitNewLine(t, lan.Hosts[from], pod, seen, 2*time.Minute)
				r := lan.Hosts[from].Podctl("migrate", pod, "--via", h.via, "--to", lan.DockAddr(h.to), "--pki", pki, "--cert", "node", "--json")
				if r.Code != 0 {
					t.Fatalf("migrate %s --via %s from host %d to host %d: exit %d: %s", pod, h.via, from, h.to, r.Code, r.Stderr)
				}
				var res struct{ Mode string }
				if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
					t.Fatalf("migrate --json: %v: %q", err, r.Stdout)
				}
				if res.Mode != h.got {
					t.Errorf("migrate --via %s from host %d to host %d went through %q, want %q", h.via, from, h.to, res.Mode, h.got)
				}
				if r := lan.Hosts[from].Podctl("inspect", pod); r.Code == 0 {
					t.Fatalf("after migrating away, host %d still has pod %s", from, pod)
				}
				if h.to != 2 && !isHoused(lan.Hosts[h.to], pod) {
					t.Errorf("on amd64 host %d the vessel is not housed in a native pod", h.to)
				}
				from = h.to
			}
			h := lan.Hosts[0]
			checkLikeGolden(t, h, wl, pod, waitVesselExit(t, h, pod, 5*time.Minute))
		})
	}
}

// TestVesselOnArm64Compiler resumes, with podctl built for arm64 and run
// by qemu-user, a snapshot taken on amd64 mid-run: there wazero compiles
// the guest (on the other foreign ISAs it interprets it).
func TestVesselOnArm64Compiler(t *testing.T) {
	wls := wasmWorkloads(t)
	h := newHost(t)
	launcher, err := harness.BuildForeign(t.TempDir(), harness.ForeignISAs[0])
	harness.SkipOrFail(t, err)
	arm := harness.NewHost(t, launcher)
	for _, name := range []string{"recurse", "gowork"} {
		wl := wls[name]
		t.Run(name, func(t *testing.T) {
			pod := "a-" + name
			createVessel(t, h, wl, pod, "PODCTL_WASM_ENGINE=interpreter")
			waitNewLine(t, h, pod, 2, 30*time.Second)
			snap := filepath.Join(t.TempDir(), pod+".snap")
			h.MustPodctl("checkpoint", "--portable", "-o", snap, pod)
			arm.MustPodctl("restore", snap)
			checkLikeGolden(t, arm, wl, pod, waitVesselExit(t, arm, pod, 5*time.Minute))
		})
	}
}

// TestVesselRestoreBadSnapshots: a corrupt or truncated snapshot, one of
// an unknown format version, one for a module this host does not have,
// and one whose memory exceeds the restore's limit are each refused with
// one clear line, and nothing is restored.
func TestVesselRestoreBadSnapshots(t *testing.T) {
	wls := wasmWorkloads(t)
	h := newHost(t)
	createVessel(t, h, wls["recurse"], "src", "PODCTL_WASM_ENGINE=interpreter")
	waitNewLine(t, h, "src", 2, 30*time.Second)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.snap")
	h.MustPodctl("checkpoint", "--portable", "--leave-running", "-o", good, "src")
	h.MustPodctl("rm", "-f", "src")
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Decode(bytes.NewReader(data), snapshot.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	snap.ModuleHash[0] ^= 0xff
	snap.Module = nil
	var other bytes.Buffer
	if err := snapshot.Encode(&other, snap); err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 0x20
	version2 := bytes.Clone(data)
	binary.LittleEndian.PutUint32(version2[len(snapshot.Magic):], 2)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"flipped byte", []string{write("flipped.snap", flipped)}, "corrupt"},
		{"truncated", []string{write("truncated.snap", data[:len(data)/2])}, "truncated"},
		{"unknown version", []string{write("v2.snap", version2)}, "unsupported format version 2"},
		{"other module", []string{write("other.snap", other.Bytes())}, "not in this host's cache"},
		{"memory above the limit", []string{"--memory", "1m", good}, "limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.Snapshot()
			r := h.Podctl(append([]string{"restore", "--name", "bad"}, tc.args...)...)
			if r.Code == 0 {
				t.Fatalf("restore succeeded: %s", r.Stdout)
			}
			checkOneLine(t, r.Stderr, tc.msg)
			if diff := before.Diff(h.Snapshot()); diff != "" {
				t.Errorf("left behind:\n%s", diff)
			}
			if _, err := os.Stat(vesselDir(h, "bad")); !os.IsNotExist(err) {
				t.Errorf("a vessel pod was left behind (%v)", err)
			}
		})
	}
	// The good one restores.
	h.MustPodctl("restore", "--name", "good", good)
	checkLikeGolden(t, h, wls["recurse"], "good", waitVesselExit(t, h, "good", 2*time.Minute))
}

// TestVesselStopsOnOneCPU checkpoints a vessel pod whose guest spins in
// a loop without calls, when its supervisor has one CPU (a one-CPU
// machine, a pinned dock: here taskset, as nobody, so that the vessel
// is not housed in a native pod, whose init would reset the affinity).
// The guest's goroutine holds a Go P for as long as it runs compiled
// code, which Go never preempts: with GOMAXPROCS 1 the stop request sat
// unread on the control socket until podctl gave up.
func TestVesselStopsOnOneCPU(t *testing.T) {
	wasmWorkloads(t) // skips without the WASI toolchain
	harness.RequireRoot(t)
	dir := t.TempDir()
	// t.TempDir makes a private directory and dir inside it.
	if err := errors.Join(os.Chmod(filepath.Dir(dir), 0o755), os.Chmod(dir, 0o777)); err != nil {
		t.Fatal(err)
	}
	src, module := filepath.Join(dir, "spin.c"), filepath.Join(dir, "spin.wasm")
	if err := os.WriteFile(src, []byte(spinSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("clang-14", "--target=wasm32-wasi", "-O2", "-o", module, src).CombinedOutput(); err != nil {
		t.Fatalf("clang-14: %v\n%s", err, out)
	}
	root := filepath.Join(dir, "root")
	// podctl runs as nobody, pinned to CPU 0, and each command has a
	// minute: the bug made checkpoint wait forever for the supervisor.
	podctl := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "taskset", append([]string{"-c", "0", podctlBin, "--root", root}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := podctl("create", "--name", "spin", "--wasm", module); err != nil {
		t.Fatalf("podctl create: %v\n%s", err, out)
	}
	defer func() {
		if out, err := podctl("rm", "-f", "spin"); err != nil {
			// A supervisor that does not answer cannot be removed.
			t.Errorf("podctl rm: %v\n%s", err, out)
			exec.Command("pkill", "-KILL", "-f", root).Run()
		}
	}()
	snap := filepath.Join(dir, "spin.snap")
	if out, err := podctl("checkpoint", "--portable", "--leave-running", "-o", snap, "spin"); err != nil {
		t.Fatalf("podctl checkpoint of a spinning guest on one CPU: %v\n%s", err, out)
	}
	if out, err := podctl("inspect", "spin"); err != nil || !strings.Contains(out, `"running"`) {
		t.Fatalf("after a --leave-running checkpoint: %v\n%s", err, out)
	}
}

// spinSource is a WASI program that loops without a call for ever: it
// reaches the host only through its poll points.
const spinSource = `int main(void) { volatile unsigned long n = 0; for (;;) n++; }`
