// Package harness runs podctl end to end for tests: it builds the binary,
// makes "hosts" (network namespaces, each with its own podctl state root),
// runs podctl commands in them, and inspects what a pod left on the system.
// It also builds the WebAssembly programs the tests run, and finds the
// tools they need.
//
// # Skips
//
// A test skips only when a tool it needs is not installed: one of the
// compilers, emulators and utilities scripts/deps.sh installs (make
// deps), which a developer's machine may lack; or when it does not run as
// root, which it needs. Whether a tool is installed is decided before
// anything is built with it (LookTool, WasmClang), never from the output
// of a failed build: once the tools are there, a build that fails is a
// failure of the test, with the build's output (SkipOrFail tells the two
// apart by ErrToolMissing).
//
// make test, make e2e and make bench run make deps first and set
// RequireToolsEnv: there every tool is installed, and a missing one fails
// the tests that need it (scripts/deps.sh is then what is broken).
package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// RequireRoot skips the test when it cannot do what podctl does: when it
// does not run as root, or when a tool the harness runs is missing (see
// NeedTool).
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root (namespaces, mounts, nftables)")
	}
	NeedTool(tb, "nsenter", "util-linux")
	NeedTool(tb, "nft", "nftables")
	NeedTool(tb, "ip", "iproute2")
}

// Build compiles podctl and podinit into dir and returns podctl's path.
func Build(dir string) (string, error) {
	_, self, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(self), "..", "..")
	bin := filepath.Join(dir, "podctl")
	// The same static build as the Makefile's (the binary is also every
	// pod's init, and must run in root filesystems without a libc), with
	// the failpoints the fault tests arm (internal/failpoint).
	cmd := exec.Command("go", "build", "-tags", "netgo osusergo seccomp failpoints", "-ldflags", "-extldflags -static", "-o", bin, "./cmd/podctl")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build podctl: %v\n%s", err, out)
	}
	// podinit next to podctl, as `make build` installs it: pods use it as
	// their init (see virtns.DefaultInit).
	cc := exec.Command("cc", "-static", "-Os", "-Wall", "-Wextra", "-Werror", "-o", filepath.Join(dir, "podinit"), "cmd/podinit/podinit.c")
	cc.Dir = repo
	if out, err := cc.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build podinit: %v\n%s", err, out)
	}
	return bin, nil
}

// Host is a simulated machine: a network namespace with loopback up and a
// podctl state root of its own.
type Host struct {
	tb     testing.TB
	Name   string
	Root   string
	Binary string
	NSPath string
	// Flags are global podctl flags passed to every podctl the host runs,
	// after --root (a LAN host's --uplink, say).
	Flags []string
}

// NewHost makes a host; it is torn down (pods removed, namespace deleted)
// when the test ends.
func NewHost(tb testing.TB, binary string) *Host {
	tb.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "podctl-t-" + hex.EncodeToString(b)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		tb.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if err != nil {
		tb.Fatalf("create netns %s: %v", name, err)
	}
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	ns.Close()
	if serr := netns.Set(orig); serr != nil {
		tb.Fatal(serr)
	}
	if err != nil {
		tb.Fatal(err)
	}
	h := &Host{tb: tb, Name: name, Root: tb.TempDir(), Binary: binary, NSPath: "/run/netns/" + name}
	tb.Cleanup(h.close)
	return h
}

func (h *Host) close() {
	if pods, err := h.Pods(); err == nil {
		for _, p := range pods {
			h.Podctl("rm", "-f", p.Name)
		}
	}
	netns.DeleteNamed(h.Name)
}

// Result is what a command did.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Podctl runs podctl in the host and returns its result.
func (h *Host) Podctl(args ...string) Result {
	return h.Run(h.PodctlArgv(args...)...)
}

// PodctlArgv is the command line that runs podctl with args in the host:
// the binary, its state root and the host's Flags, then args.
func (h *Host) PodctlArgv(args ...string) []string {
	argv := append([]string{h.Binary, "--root", h.Root}, h.Flags...)
	return append(argv, args...)
}

// MustPodctl runs podctl and fails the test unless it exits 0.
func (h *Host) MustPodctl(args ...string) string {
	h.tb.Helper()
	r := h.Podctl(args...)
	if r.Code != 0 {
		h.tb.Fatalf("podctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// Run runs any command in the host's network namespace (only: mounts and
// processes are the machine's, as they would be for podctl on a real host).
func (h *Host) Run(argv ...string) Result {
	return h.RunCmd(h.Command(argv...))
}

// Command returns an unstarted command that runs argv in the host.
func (h *Host) Command(argv ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + h.NSPath, "--"}, argv...)...)
}

// RunCmd runs cmd and collects its output and exit status.
func (h *Host) RunCmd(cmd *exec.Cmd) Result {
	var out, errb bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &errb
	}
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		r.Code = -1
		r.Stderr += err.Error()
	}
	return r
}

// PodInfo is the part of `podctl inspect` tests look at.
type PodInfo struct {
	ID   string `json:"id"`
	Spec struct {
		Name string `json:"name"`
		// Vessel is set on a native pod housing a Wasm vessel.
		Vessel *struct {
			Name string `json:"name"`
		} `json:"vessel"`
	} `json:"spec"`
	Name     string
	Status   string `json:"status"`
	ExitCode *int   `json:"exitCode"`
	InitPID  int    `json:"initPid"`
	PIDs     []int  `json:"pids"`
	Dir      string `json:"dir"`
	Endpoint struct {
		IP       string `json:"ip"`
		MAC      string `json:"mac"`
		HostVeth string `json:"hostVeth"`
		PodVeth  string `json:"podVeth"`
	} `json:"endpoint"`
	CgroupPath string `json:"cgroupPath"`
	// Init names the pod's init binary, a file in ROOT/init.
	Init string `json:"init"`
}

// Inspect returns `podctl inspect NAME`.
func (h *Host) Inspect(name string) PodInfo {
	h.tb.Helper()
	var p PodInfo
	if err := json.Unmarshal([]byte(h.MustPodctl("inspect", name)), &p); err != nil {
		h.tb.Fatalf("inspect %s: %v", name, err)
	}
	p.Name = p.Spec.Name
	return p
}

// Pods returns `podctl ps --json`.
func (h *Host) Pods() ([]PodInfo, error) {
	r := h.Podctl("ps", "--json")
	if r.Code != 0 {
		return nil, fmt.Errorf("ps: %s", r.Stderr)
	}
	var ps []PodInfo
	if err := json.Unmarshal([]byte(r.Stdout), &ps); err != nil {
		return nil, err
	}
	for i := range ps {
		ps[i].Name = ps[i].Spec.Name
	}
	return ps, nil
}

// Eventually polls cond every few milliseconds until it returns nil or the
// deadline passes, then fails the test with cond's last error.
func Eventually(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	delay := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("condition not met within %v: %v", timeout, err)
		case <-time.After(delay):
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

// BuildStatic compiles the Go package pkg (relative to the repository)
// into a static binary at out, for image-directory pods.
func BuildStatic(out, pkg string) error {
	_, self, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = filepath.Join(filepath.Dir(self), "..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// World is a network namespace standing for "the internet" as seen from a
// host: a peer on a point-to-point link with no route back to any pod
// subnet, so a pod reaches it only through the host's masquerading.
type World struct {
	NSPath string
	// Addr is the world's address; HostAddr the host's end of the link.
	Addr, HostAddr string
}

// AddWorld links a new world namespace to the host.
func (h *Host) AddWorld(tb testing.TB) World {
	tb.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	name := "podctl-w-" + hex.EncodeToString(b)
	if r := h.Run("ip", "netns", "add", name); r.Code != 0 {
		tb.Fatalf("add world netns: %s", r.Stderr)
	}
	tb.Cleanup(func() { netns.DeleteNamed(name) })
	w := World{NSPath: "/run/netns/" + name, Addr: "198.51.100.2", HostAddr: "198.51.100.1"}
	for _, argv := range [][]string{
		{"ip", "link", "add", "wd0", "type", "veth", "peer", "name", "wd1", "netns", name},
		{"ip", "addr", "add", w.HostAddr + "/24", "dev", "wd0"},
		{"ip", "link", "set", "wd0", "up"},
		{"ip", "-n", name, "addr", "add", w.Addr + "/24", "dev", "wd1"},
		{"ip", "-n", name, "link", "set", "wd1", "up"},
		{"ip", "-n", name, "link", "set", "lo", "up"},
	} {
		if r := h.Run(argv...); r.Code != 0 {
			tb.Fatalf("%v: %s", argv, r.Stderr)
		}
	}
	return w
}

// Command returns an unstarted command that runs argv in the world.
func (w World) Command(argv ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + w.NSPath, "--"}, argv...)...)
}
