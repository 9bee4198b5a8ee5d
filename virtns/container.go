package virtns

import (
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/console"
	mobyseccomp "github.com/moby/profiles/seccomp"
	"github.com/moby/sys/capability"
	"github.com/opencontainers/cgroups"
	_ "github.com/opencontainers/cgroups/devices" // device rules for the cgroup manager
	cgmanager "github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/startreport"
)

// Runtime creates and controls pods' process trees with runc's
// libcontainer, which keeps its per-pod state under StateDir.
type Runtime struct {
	// StateDir is libcontainer's root directory.
	StateDir string
}

// PodConfig is what the runtime needs to start a pod.
type PodConfig struct {
	// ID names the pod's libcontainer container.
	ID string
	// Hostname is set in the pod's UTS namespace.
	Hostname string
	// Rootfs is the mounted root filesystem (see Rootfs.Mount).
	Rootfs string
	// InitBinary is the host path of the pod init (podinit, or podctl
	// itself: see DefaultInit), bind-mounted read-only at InitPath to be
	// the pod's PID 1.
	InitBinary string
	// Binds are more host files bind-mounted read-only into the pod (the
	// podctl binary of a pod housing a vessel, say). Like the init, CRIU
	// dumps them as external mounts, mapped back to each host's own
	// file on restore.
	Binds []Bind
	// CgroupPath is the pod's cgroup, relative to each hierarchy's root.
	CgroupPath string
	// MemoryLimit and PidsLimit are cgroup limits; 0 means none.
	MemoryLimit, PidsLimit int64
	// NetNSPath, when set, is a network namespace podctl made and plumbed
	// (CreateNetNS, PlumbPod: eth0, loopback, routes) for the pod to join,
	// which CRIU then leaves out of checkpoints. Empty gives the pod a new
	// namespace with loopback only.
	NetNSPath string
	// Path is the in-pod path of the payload's executable, Args its argv.
	Path string
	Args []string
	Env  []string
	Cwd  string
	// Privileged gives the pod's processes every capability the kernel
	// has, and neither seccomp filter, masked and read-only paths nor
	// no_new_privs: its root is the host's root, kept apart by
	// namespaces alone.
	Privileged bool
}

// Bind is a read-only bind mount of the host file Source at the in-pod
// path Destination.
type Bind struct {
	Source, Destination string
	// Writable makes the bind mount read-write (a volume's, say); binds
	// are read-only otherwise.
	Writable bool
}

// defaultCaps is the capability set of a pod's processes: Docker's and
// podman's default, enough for ordinary servers (binding low ports, raw
// sockets for ping) without letting the pod remount or load modules.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// maskedPaths are hidden from the pod (an empty file or directory is
// mounted over each) and readonlyPaths are remounted read-only: the
// defaults of the OCI runtime spec, Docker and podman. They keep the
// kernel's knobs and leaks (core_pattern, sysrq-trigger, kcore, keys)
// out of a pod's reach even though it runs as root.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// SeccompEnforced reports whether this build confines pods with seccomp:
// libcontainer applies filters only when built with cgo and the tag
// "seccomp" (and libseccomp), as `make build` does. `podctl doctor`
// fails a build without it.
const SeccompEnforced = seccomp.Enabled

// defaultSeccomp is the seccomp filter of a pod whose processes have
// caps: Docker's default profile (moby/profiles), which allows the
// syscalls those capabilities need and refuses, with EPERM, the rest of
// what can harm the host (kexec, bpf, keyctl, open_by_handle_at, ...).
// CRIU suspends it while it dumps a pod and restores it with the pod.
func defaultSeccomp(caps []string) (*configs.Seccomp, error) {
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding: caps, Effective: caps, Permitted: caps,
	}}}
	profile, err := mobyseccomp.GetDefaultProfile(spec)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	return specconv.SetupSeccomp(profile)
}

// libcontainerConfig is the pod's libcontainer configuration; criuConfig is
// the CRIU configuration file its checkpoints and restores use.
func (c PodConfig) libcontainerConfig(criuConfig string) (*configs.Config, error) {
	const noexec = unix.MS_NOEXEC | unix.MS_NOSUID | unix.MS_NODEV
	res := &cgroups.Resources{Memory: c.MemoryLimit}
	if c.PidsLimit > 0 {
		n := c.PidsLimit
		res.PidsLimit = &n
	}
	for _, d := range specconv.AllowedDevices {
		res.Devices = append(res.Devices, &d.Rule)
	}
	podCaps := defaultCaps
	if c.Privileged {
		all, err := allCaps()
		if err != nil {
			return nil, err
		}
		podCaps = all
	}
	caps := &configs.Capabilities{Bounding: podCaps, Effective: podCaps, Permitted: podCaps}
	cfg := &configs.Config{
		Rootfs:          c.Rootfs,
		RootPropagation: unix.MS_PRIVATE | unix.MS_REC,
		Hostname:        c.Hostname,
		Capabilities:    caps,
		MaskPaths:       maskedPaths,
		ReadonlyPaths:   readonlyPaths,
		NoNewPrivileges: true,
		Namespaces: configs.Namespaces{
			{Type: configs.NEWNS}, {Type: configs.NEWPID}, {Type: configs.NEWNET, Path: c.NetNSPath},
			{Type: configs.NEWUTS}, {Type: configs.NEWIPC},
		},
		Cgroups: &cgroups.Cgroup{Path: c.CgroupPath, Resources: res},
		Devices: specconv.AllowedDevices,
		Mounts: []*configs.Mount{
			{Source: "proc", Destination: "/proc", Device: "proc", Flags: noexec},
			// /dev and /dev/shm are directories of the root (see dev.go).
			{Source: "devpts", Destination: "/dev/pts", Device: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "newinstance,ptmxmode=0666,mode=0620,gid=5"},
			{Source: "mqueue", Destination: "/dev/mqueue", Device: "mqueue", Flags: noexec},
			{Source: "sysfs", Destination: "/sys", Device: "sysfs", Flags: noexec | unix.MS_RDONLY},
			{Source: c.InitBinary, Destination: InitPath, Device: "bind", Flags: unix.MS_BIND | unix.MS_RDONLY},
		},
		Networks: []*configs.Network{{Type: "loopback"}},
		Labels:   []string{criuConfigLabel + "=" + criuConfig},
		Version:  "1.2.0",
	}
	for _, b := range c.Binds {
		flags := unix.MS_BIND | unix.MS_REC | unix.MS_NOSUID | unix.MS_NODEV
		if !b.Writable {
			flags |= unix.MS_RDONLY
		}
		cfg.Mounts = append(cfg.Mounts, &configs.Mount{Source: b.Source, Destination: b.Destination, Device: "bind", Flags: flags})
	}
	if c.NetNSPath != "" {
		cfg.Networks = nil // plumbed by podctl, loopback included
	}
	if c.Privileged {
		cfg.MaskPaths, cfg.ReadonlyPaths, cfg.NoNewPrivileges = nil, nil, false
		return cfg, nil
	}
	if SeccompEnforced {
		sc, err := defaultSeccomp(defaultCaps)
		if err != nil {
			return nil, err
		}
		cfg.Seccomp = sc
	}
	return cfg, nil
}

// allCaps is every capability podctl itself may have (its bounding set:
// a pod cannot be given more), for a privileged pod.
func allCaps() ([]string, error) {
	supported, err := capability.ListSupported()
	if err != nil {
		return nil, fmt.Errorf("list capabilities: %w", err)
	}
	self, err := capability.NewPid2(0)
	if err == nil {
		err = self.Load()
	}
	if err != nil {
		return nil, fmt.Errorf("read podctl's capabilities: %w", err)
	}
	var names []string
	for _, c := range supported {
		if self.Get(capability.BOUNDING, c) {
			names = append(names, "CAP_"+strings.ToUpper(c.String()))
		}
	}
	return names, nil
}

// initReport is what the pod init tells podctl once it has started (or
// failed to start) the payload.
type initReport struct {
	Error string `json:"error,omitempty"`
	Kind  int    `json:"kind,omitempty"`
}

// Start creates the pod's namespaces and cgroup, starts podctl's pod init
// as PID 1 in them, and waits until the init has started the payload. It
// returns the init's host PID. On failure nothing of the container is left.
func (rt Runtime) Start(ctx context.Context, c PodConfig) (pid int, err error) {
	if err := os.MkdirAll(rt.StateDir, 0o700); err != nil {
		return 0, fmt.Errorf("start %s: %w", c.ID, err)
	}
	cfg, err := c.libcontainerConfig(rt.criuConfigPath(c.ID))
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", c.ID, err)
	}
	if err := prepareShm(c.Rootfs); err != nil {
		return 0, fmt.Errorf("start %s: %w", c.ID, err)
	}
	ctr, err := libcontainer.Create(rt.StateDir, c.ID, cfg)
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", c.ID, err)
	}
	defer func() {
		if err != nil {
			destroy(ctx, ctr)
		}
	}()
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", c.ID, err)
	}
	defer reportR.Close()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		reportW.Close()
		return 0, fmt.Errorf("start %s: %w", c.ID, err)
	}
	defer devNull.Close()
	args := append([]string{InitPath, "_podinit", c.Path, "--"}, c.Args...)
	proc := &libcontainer.Process{
		Args: args, Env: c.Env, Cwd: c.Cwd, Init: true,
		Stdin: devNull, Stdout: devNull, Stderr: devNull,
		ExtraFiles: []*os.File{reportW},
	}
	err = ctr.Run(proc)
	reportW.Close()
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", c.ID, err)
	}
	pid, err = proc.Pid()
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", c.ID, err)
	}
	var rep initReport
	if err = startreport.Read(ctx, reportR, &rep, "exited before starting the command"); err != nil {
		return 0, fmt.Errorf("start %s: pod init: %w", c.ID, err)
	}
	if rep.Error != "" {
		k := errdefs.Kind(rep.Kind)
		if k == 0 {
			k = errdefs.Internal
		}
		return 0, errdefs.New(k, "%s", rep.Error)
	}
	return pid, nil
}

// WriteReport is the pod init's side of the start handshake: it writes one
// JSON line to w (fd 3 of the init): {} when the payload started.
func WriteReport(w io.Writer, startErr error) error {
	var rep initReport
	if startErr != nil {
		rep.Error = startErr.Error()
		rep.Kind = int(errdefs.KindOf(startErr))
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Status is a pod's process state as libcontainer sees it.
type Status string

// Pod process states.
const (
	StatusRunning Status = "running"
	StatusStopped Status = "stopped"
	StatusPaused  Status = "paused"
	StatusMissing Status = "missing" // no container: never started or destroyed
)

// State returns the container's status and init PID (0 when not running).
//
// It loads the container with libcontainer, which reads the pod's freezer
// state: while a freeze is under way that read waits (up to 10 s on
// cgroup v2) for the cgroup to be frozen. The library takes no context,
// so ctx cannot cut that wait short.
func (rt Runtime) State(ctx context.Context, id string) (Status, int, error) {
	ctr, err := libcontainer.Load(rt.StateDir, id)
	if err != nil {
		if errors.Is(err, libcontainer.ErrNotExist) {
			return StatusMissing, 0, nil
		}
		return "", 0, fmt.Errorf("state %s: %w", id, err)
	}
	st, err := ctr.Status()
	if err != nil {
		return "", 0, fmt.Errorf("state %s: %w", id, err)
	}
	switch st {
	case libcontainer.Running, libcontainer.Created:
		s, err := ctr.State()
		if err != nil {
			return "", 0, fmt.Errorf("state %s: %w", id, err)
		}
		return StatusRunning, s.InitProcessPid, nil
	case libcontainer.Paused:
		s, err := ctr.State()
		if err != nil {
			return "", 0, fmt.Errorf("state %s: %w", id, err)
		}
		return StatusPaused, s.InitProcessPid, nil
	default:
		return StatusStopped, 0, nil
	}
}

// Signal sends sig to the pod's init. It sends it even when ctx is done
// (Stop kills a pod whose ctx has ended); ctx is there because loading
// the container can wait on the freezer (see State).
func (rt Runtime) Signal(ctx context.Context, id string, sig os.Signal) error {
	ctr, err := libcontainer.Load(rt.StateDir, id)
	if err != nil {
		return fmt.Errorf("signal %s: %w", id, err)
	}
	if err := ctr.Signal(sig); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
		return fmt.Errorf("signal %s: %w", id, err)
	}
	return nil
}

// Stop sends SIGTERM to the pod's init (which forwards it to the payload)
// and, if the pod has not ended when ctx is done, SIGKILL. It returns once
// the pod's init is gone.
func (rt Runtime) Stop(ctx context.Context, id string) error {
	if err := rt.Signal(ctx, id, unix.SIGTERM); err != nil {
		return err
	}
	if err := rt.waitStopped(ctx, id); err == nil {
		return nil
	}
	// The pod did not stop in time: kill it. ctx may be over, but the
	// kill and the wait for it must still happen.
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killWait)
	defer cancel()
	if err := rt.Signal(kctx, id, unix.SIGKILL); err != nil {
		return err
	}
	return rt.waitStopped(kctx, id)
}

// killWait bounds each wait for SIGKILLed processes to be gone.
const killWait = 10 * time.Second

func (rt Runtime) waitStopped(ctx context.Context, id string) error {
	err := poll(ctx, func() (bool, error) {
		st, _, err := rt.State(ctx, id)
		return st != StatusRunning && st != StatusPaused, err
	})
	if err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	return nil
}

// poll calls done with a growing pause (1 ms up to 32 ms) until it reports
// true or an error, or ctx ends.
func poll(ctx context.Context, done func() (bool, error)) error {
	delay := time.Millisecond
	for {
		ok, err := done()
		if ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		if delay < 32*time.Millisecond {
			delay *= 2
		}
	}
}

// Destroy kills every process of the pod and removes its cgroup and
// libcontainer state. A pod that does not exist is not an error, and
// neither is one that a crash left half made: whatever libcontainer cannot
// load is removed by path, cgroup included.
//
// Destroy is cleanup and runs to the end even when ctx is cancelled (a
// Ctrl-C must not leave a pod half destroyed): it keeps ctx's values
// only, and each wait for killed processes is bounded by 10 s.
func (rt Runtime) Destroy(ctx context.Context, id, cgroupPath string) error {
	if err := rt.reapCRIU(ctx, id); err != nil {
		return fmt.Errorf("destroy %s: %w", id, err)
	}
	ctr, err := libcontainer.Load(rt.StateDir, id)
	if err == nil {
		err = destroy(ctx, ctr)
	} else if errors.Is(err, libcontainer.ErrNotExist) {
		// A crash between libcontainer's mkdir and its first state
		// write leaves a directory Load cannot read.
		err = os.RemoveAll(filepath.Join(rt.StateDir, id))
	}
	if err == nil {
		err = os.Remove(rt.criuConfigPath(id))
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("destroy %s: %w", id, err)
	}
	return destroyCgroup(ctx, cgroupPath)
}

// reapCRIU finishes what a CRIU run on container id left when the podctl
// that started it died: CRIU itself, which goes on as an orphan (with
// the pod's processes under its ptrace, where even SIGKILL does not end
// them) if it still works in the container's state directory, and the
// recursive bind mount of the pod's root that libcontainer makes there
// for a restore (criu-root), which would keep the directory from going.
// A CRIU working on images elsewhere is the business of whoever owns
// that directory (see KillProcessesIn).
func (rt Runtime) reapCRIU(ctx context.Context, id string) error {
	dir := filepath.Join(rt.StateDir, id)
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	if err := KillProcessesIn(ctx, dir); err != nil {
		return err
	}
	return unmountAll(filepath.Join(dir, "criu-root"))
}

// KillProcessesIn SIGKILLs every orphan that has dir, or a file beneath
// it, open or as its working directory (deleted or not), and waits for
// them to be gone: a CRIU whose podctl died goes on alone, holding the
// pod's processes, and is found by the images or state directory it
// works in. A podctl, and a child of a live podctl, are no orphans: a
// dock may still be rolling back in a directory another podctl already
// finds stale, and it kills its own CRIU. Like Destroy, it ignores ctx's
// cancellation.
func KillProcessesIn(ctx context.Context, dir string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killWait)
	defer cancel()
	var left []int
	err := poll(ctx, func() (bool, error) {
		left = slices.DeleteFunc(processesHolding(dir, true, 0), func(pid int) bool {
			_, ppid, ok := procStat(pid)
			return !ok || isPodctl(pid) || isPodctl(ppid)
		})
		for _, pid := range left {
			unix.Kill(pid, unix.SIGKILL)
		}
		return len(left) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("processes %v working in %s survive SIGKILL", left, dir)
	}
	return nil
}

// isPodctl reports whether process pid runs podctl: this very
// executable, or any program named podctl.
func isPodctl(pid int) bool {
	if comm, _, ok := procStat(pid); ok && comm == "podctl" {
		return true
	}
	self, err := os.Executable()
	if err != nil {
		return false
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return err == nil && strings.TrimSuffix(exe, " (deleted)") == self
}

// destroyCgroup kills whatever is left in a cgroup and removes it. Like
// Destroy, it ignores ctx's cancellation.
func destroyCgroup(ctx context.Context, path string) error {
	if path == "" {
		return nil
	}
	mgr, err := cgmanager.New(&cgroups.Cgroup{Path: path, Resources: &cgroups.Resources{}})
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", path, err)
	}
	if !mgr.Exists() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killWait)
	defer cancel()
	var pids []int
	err = poll(ctx, func() (bool, error) {
		var err error
		if pids, err = mgr.GetAllPids(); err != nil || len(pids) == 0 {
			return true, nil
		}
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("cgroup %s: processes %v survive SIGKILL", path, pids)
	}
	if err := mgr.Destroy(); err != nil {
		return fmt.Errorf("cgroup %s: %w", path, err)
	}
	return nil
}

// destroy kills a container and removes it. Like Destroy, it ignores
// ctx's cancellation: it is what undoes a failed Start or Restore, ctx's
// end included.
func destroy(ctx context.Context, ctr *libcontainer.Container) error {
	if st, err := ctr.Status(); err == nil && st != libcontainer.Stopped {
		ctr.Signal(unix.SIGKILL)
		// The init of a PID namespace takes its whole tree with it;
		// wait until it is gone so that Destroy can remove the cgroup
		// (if it never goes, Destroy reports the busy cgroup).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killWait)
		poll(ctx, func() (bool, error) {
			st, err := ctr.Status()
			return err != nil || st == libcontainer.Stopped, nil
		})
		cancel()
	}
	if err := ctr.Destroy(); err != nil {
		return fmt.Errorf("destroy %s: %w", ctr.ID(), err)
	}
	return nil
}

// ExecConfig describes a process to run inside a running pod.
type ExecConfig struct {
	Path string // in-pod path of the executable (see LookPath)
	Args []string
	Env  []string
	Cwd  string
	// Stdin is nil for no input.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// TTY gives the process a terminal from the pod's own devpts, and
	// connects it to Stdin and Stdout.
	TTY bool
}

// Exec runs a process in all of the pod's namespaces, its root and its
// cgroup, and returns its exit status (128+N when killed by signal N).
func (rt Runtime) Exec(ctx context.Context, id string, ec ExecConfig) (int, error) {
	ctr, err := libcontainer.Load(rt.StateDir, id)
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", id, err)
	}
	args := append([]string{ec.Path}, ec.Args[1:]...)
	proc := &libcontainer.Process{Args: args, Env: ec.Env, Cwd: ec.Cwd, Init: false}
	var consoleParent *os.File
	if ec.TTY {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("exec in %s: %w", id, err)
		}
		consoleParent = os.NewFile(uintptr(fds[0]), "console-parent")
		child := os.NewFile(uintptr(fds[1]), "console-child")
		defer consoleParent.Close()
		defer child.Close()
		proc.ConsoleSocket = child
		if ws, err := console.Current().Size(); err == nil {
			proc.ConsoleWidth, proc.ConsoleHeight = ws.Width, ws.Height
		}
	} else {
		proc.Stdin, proc.Stdout, proc.Stderr = ec.Stdin, ec.Stdout, ec.Stderr
		if proc.Stdin == nil {
			devNull, err := os.Open(os.DevNull)
			if err != nil {
				return 0, err
			}
			defer devNull.Close()
			proc.Stdin = devNull
		}
	}
	// libcontainer passes Args[0] both as the program and as argv[0],
	// so the process sees the resolved path as its argv[0].
	if err := ctr.Run(proc); err != nil {
		return 0, fmt.Errorf("exec in %s: %w", id, err)
	}
	if ec.TTY {
		stop, err := attachConsole(consoleParent, ec.Stdin, ec.Stdout)
		if err != nil {
			proc.Signal(unix.SIGKILL)
			proc.Wait()
			return 0, fmt.Errorf("exec in %s: %w", id, err)
		}
		defer stop()
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			proc.Signal(unix.SIGKILL)
		case <-done:
		}
	}()
	ps, err := proc.Wait()
	if ps == nil {
		return 0, fmt.Errorf("exec in %s: %w", id, err)
	}
	return exitStatus(ps), nil
}

func exitStatus(ps *os.ProcessState) int {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// attachConsole receives the pty master that the process in the pod
// created, puts the caller's terminal in raw mode, and copies between
// them. stop restores the terminal.
func attachConsole(sock *os.File, in io.Reader, out io.Writer) (stop func(), err error) {
	master, err := recvFd(sock)
	if err != nil {
		return nil, fmt.Errorf("receive console: %w", err)
	}
	cur := console.Current()
	raw := cur.SetRaw() == nil
	if in != nil {
		go io.Copy(master, in)
	}
	copied := make(chan struct{})
	go func() {
		io.Copy(out, master)
		close(copied)
	}()
	return func() {
		// Drain what the process wrote before it exited.
		select {
		case <-copied:
		case <-time.After(time.Second):
		}
		master.Close()
		if raw {
			cur.Reset()
		}
	}, nil
}

// recvFd receives one file descriptor sent with SCM_RIGHTS, as
// libcontainer's console setup sends the pty master.
func recvFd(sock *os.File) (*os.File, error) {
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), name, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("bad control message: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("bad file descriptors: %v", err)
	}
	return os.NewFile(uintptr(fds[0]), strings.TrimRight(string(name[:n]), "\x00")), nil
}

// CheckStatic returns an error of kind Unsupported when binary needs a
// dynamic loader: it could not run as the init of a pod whose image has no
// libc. `make build` links podctl statically.
func CheckStatic(binary string) error {
	f, err := elf.Open(binary)
	if err != nil {
		return fmt.Errorf("check %s: %w", binary, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errdefs.New(errdefs.Unsupported, "%s is dynamically linked and cannot be the init of a pod with its own image: build it with `make build`", binary)
		}
	}
	return nil
}

// InitName is the file name of the C pod init (cmd/podinit) that podctl
// uses when it is installed next to the podctl binary.
const InitName = "podinit"

// DefaultInit returns the pod init for the podctl binary self: the C
// podinit installed next to it when there is one (one thread and a few
// pages for CRIU to dump, against the Go runtime's threads and heap), and
// self otherwise, whose `_podinit` subcommand does the same job. Both take
// the same arguments (see Runtime.Start).
func DefaultInit(self string) string {
	p := filepath.Join(filepath.Dir(self), InitName)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return p
	}
	return self
}

// SelfBinary returns the path of the running podctl binary.
func SelfBinary() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(p)
}

// Processes returns the host PIDs of every process in the pod. Loading
// the container can wait on the freezer (see State).
func (rt Runtime) Processes(ctx context.Context, id string) ([]int, error) {
	ctr, err := libcontainer.Load(rt.StateDir, id)
	if err != nil {
		return nil, fmt.Errorf("processes of %s: %w", id, err)
	}
	return ctr.Processes()
}
