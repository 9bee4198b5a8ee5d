package virtns

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	cgmanager "github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/podctl/podctl/internal/failpoint"
	"golang.org/x/sys/unix"
)

// criuConfigLabel is the libcontainer label naming the CRIU configuration
// file of a container. libcontainer passes it to every CRIU call, and CRIU
// lets the file override RPC options: it is how podctl gives CRIU the
// options libcontainer does not expose (the network lock method, the
// page server socket).
//
// Not the log level: CRIU sets it from the RPC request after reading the
// file (criu/cr-service.c, setup_logging_from_req), and libcontainer asks
// for level 4. A desktop's dump writes a 1 MiB log at that level, which
// costs about 20 ms of its 330 (raw criu dump, -v4 against -v0).
const criuConfigLabel = "org.criu.config"

// criuLogLevel keeps the logs of the CRIU helpers podctl runs itself
// (page server, lazy pages) to errors and warnings.
const criuLogLevel = 2

// criuConfigPath is where the runtime writes a container's CRIU options
// before each checkpoint or restore.
func (rt Runtime) criuConfigPath(id string) string {
	return filepath.Join(rt.StateDir, id+".criu.conf")
}

func (rt Runtime) writeCRIUConfig(id string, lines ...string) error {
	if script, ok := failpoint.Value(failpoint.CRIUScriptPrefix); ok {
		lines = append(lines, "action-script "+script)
	}
	return os.WriteFile(rt.criuConfigPath(id), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// CheckpointOptions tune Runtime.Checkpoint.
type CheckpointOptions struct {
	// ImagesDir receives CRIU's image files (everything but memory when
	// PageServer is set).
	ImagesDir string
	// LeaveRunning keeps the pod's processes after the dump. If the pod
	// was frozen beforehand (see Freeze) it stays frozen, which is how a
	// migration keeps it able to resume if the destination fails.
	LeaveRunning bool
	// PageServer, when valid, is where memory pages go: with Lazy unset,
	// CRIU connects to a page server there and sends them; with Lazy
	// set, CRIU listens there and serves them on demand to a restoring
	// destination's lazy-pages daemon.
	PageServer netip.AddrPort
	// PageServerConn, instead of PageServer, is an already connected
	// stream socket to send pages on (or, with Lazy, to serve them on). It is handed to
	// CRIU by inheritance (`ps-socket`): libcontainer passes no extra
	// files to a dump, but CRIU inherits any descriptor not marked
	// close-on-exec. A unix socket also spares CRIU's TCP_CORK, which
	// held its last page-server message for some 200 ms.
	PageServerConn *os.File
	// Lazy dumps for post-copy: CRIU returns only once every page has
	// been fetched from its page server (or the transfer failed).
	Lazy bool
	// Ready, with Lazy, is called once everything but memory has been
	// dumped and the page server is listening: the destination may
	// restore from then on.
	Ready func()
	// Freeze, if set, is called once everything CRIU needs is ready,
	// just before it starts: the caller stops the pod there, so the time
	// it spends frozen is the dump's alone. An error from it is returned
	// and nothing is dumped.
	Freeze func() error
}

// Checkpoint dumps the pod's process tree with CRIU through libcontainer:
// established TCP connections included (repair mode), the network locked
// with nftables inside the pod's namespace while it is dumped, podctl's
// init binary declared as an external bind mount. CRIU freezes the pod
// with the cgroup freezer.
//
// If ctx ends before CRIU starts, nothing is dumped. Once it has started,
// CRIU is killed only where that is safe: while it is in the pod's
// processes (its parasite code runs in them) a kill could leave them
// broken, so a dump runs to its end and the caller, seeing ctx done,
// resumes the pod; a lazy dump that serves its pages is killed, since its
// destination may never fetch them.
func (rt Runtime) Checkpoint(ctx context.Context, id string, o CheckpointOptions) error {
	ctr, err := libcontainer.Load(rt.StateDir, id)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", id, err)
	}
	lines := []string{"network-lock skip"}
	if st, err := ctr.State(); err == nil {
		dirs, err := maskedDirMounts(st.InitProcessPid)
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w", id, err)
		}
		for _, d := range dirs {
			lines = append(lines, fmt.Sprintf("external mnt[%s]:%s", d, maskedDirKey))
		}
	}
	if o.PageServerConn != nil {
		// A duplicate numbered well above the descriptors exec sets up
		// for CRIU (0-3), and without close-on-exec (F_DUPFD clears it).
		fd, err := unix.FcntlInt(o.PageServerConn.Fd(), unix.F_DUPFD, 100)
		if err != nil {
			return fmt.Errorf("checkpoint %s: page server socket: %w", id, err)
		}
		defer unix.Close(fd)
		lines = append(lines, "ps-socket "+strconv.Itoa(fd))
		// CRIU sends to a page server only when told of one; the
		// socket above replaces the address (loopback, should a CRIU
		// ever listen there instead).
		o.PageServer = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 1)
	}
	if err := rt.writeCRIUConfig(id, lines...); err != nil {
		return fmt.Errorf("checkpoint %s: %w", id, err)
	}
	EnsureKerndatCache(ctx)
	// libcontainer asks CRIU for its version, with a `criu swrk` run of
	// its own (some 8 ms), on a container's first Checkpoint and then
	// remembers it. Called without an images directory, Checkpoint asks
	// and returns at once: doing that here keeps that run out of the
	// pod's frozen time. Its error is of no interest; the real call
	// reports any problem.
	_ = ctr.Checkpoint(&libcontainer.CriuOpts{})
	opts := &libcontainer.CriuOpts{
		ImagesDirectory: o.ImagesDir,
		LeaveRunning:    o.LeaveRunning,
		// libcontainer recreates the cgroup and its limits on restore, so
		// CRIU need not dump them.
		ManageCgroupsMode: "ignore",
		TcpEstablished:    true,
		TcpSkipInFlight:   true,
		LinkRemap:         true,
		FileLocks:         true,
		LazyPages:         o.Lazy,
		StatusFd:          -1,
	}
	if o.PageServer.IsValid() {
		opts.PageServer = libcontainer.CriuPageServerInfo{Address: o.PageServer.Addr().String(), Port: int32(o.PageServer.Port())}
	}
	// serving is closed once a lazy dump is out of the pod's processes
	// and serves their pages.
	serving := make(chan struct{})
	// waiters are the pod's threads blocked in poll when it froze, whose
	// images get their poll back (see restartPolls); toRewrite hands
	// them to a lazy dump's status reader, and rewritten carries the
	// outcome of the rewrite, made before its Ready.
	var waiters []pollWaiter
	toRewrite, rewritten := make(chan []pollWaiter, 1), make(chan error, 1)
	if o.Lazy && o.Ready != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w", id, err)
		}
		defer r.Close()
		// libcontainer closes the status descriptor itself once it has
		// written to it: it gets a duplicate of its own, or it would
		// close ours, and our Close a number reused meanwhile (a
		// manifest being saved, once, got EBADF). A dump that fails
		// first leaves the duplicate open until this process ends.
		sfd, err := unix.FcntlInt(w.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		w.Close()
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w", id, err)
		}
		opts.StatusFd = sfd
		go func() {
			var b [1]byte
			if n, _ := r.Read(b[:]); n == 1 {
				_, err := restartPolls(o.ImagesDir, <-toRewrite)
				rewritten <- err
				o.Ready()
				close(serving)
			}
		}()
	} else if o.Lazy {
		close(serving)
	}
	if o.Freeze != nil {
		if err := o.Freeze(); err != nil {
			return fmt.Errorf("checkpoint %s: %w", id, err)
		}
		pids, err := ctr.Processes()
		if err == nil {
			waiters, err = findPollWaiters(pids)
		}
		if err != nil {
			return fmt.Errorf("checkpoint %s: find threads in poll: %w", id, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("checkpoint %s: %w", id, err)
	}
	toRewrite <- waiters
	criuCtx, stop := killableAfter(ctx, serving)
	err = runCRIU(criuCtx, o.ImagesDir, func() error { return ctr.Checkpoint(opts) })
	stop()
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w%s", id, err, CRIULogError(filepath.Join(o.ImagesDir, "dump.log")))
	}
	if !o.Lazy || o.Ready == nil {
		_, err := restartPolls(o.ImagesDir, waiters)
		rewritten <- err
	}
	// A lazy dump returns once its pages are fetched, so after Ready and
	// the rewrite before it.
	select {
	case err := <-rewritten:
		if err != nil {
			return fmt.Errorf("checkpoint %s: restart poll after restore: %w", id, err)
		}
	default:
	}
	return nil
}

// RestoreOptions tune Runtime.Restore.
type RestoreOptions struct {
	// ImagesDir holds the CRIU images.
	ImagesDir string
	// Lazy restores with post-copy: memory is fetched on demand by a
	// `criu lazy-pages` daemon the caller has started on ImagesDir.
	Lazy bool
}

// Restore recreates a checkpointed pod from CRIU images: a new
// libcontainer container with c's configuration (cgroup limits included)
// whose processes, namespaces and sockets come from the images, joining
// the network namespace c.NetNSPath the caller has made and plumbed (and
// keeps off the bridge until restore has finished, so no packet reaches a
// half restored socket). It returns the host PID of the pod's init.
func (rt Runtime) Restore(ctx context.Context, c PodConfig, o RestoreOptions) (pid int, err error) {
	if err := os.MkdirAll(rt.StateDir, 0o700); err != nil {
		return 0, fmt.Errorf("restore %s: %w", c.ID, err)
	}
	cfg, err := c.libcontainerConfig(rt.criuConfigPath(c.ID))
	if err != nil {
		return 0, fmt.Errorf("restore %s: %w", c.ID, err)
	}
	if err := prepareDev(c.Rootfs); err != nil {
		return 0, fmt.Errorf("restore %s: %w", c.ID, err)
	}
	empty, err := mountMaskedDir(rt.StateDir, filepath.Join(filepath.Dir(c.Rootfs), MaskedMountDir))
	if err != nil {
		return 0, fmt.Errorf("restore %s: %w", c.ID, err)
	}
	defer unmountMaskedDir(empty)
	if err := rt.writeCRIUConfig(c.ID, "network-lock skip", fmt.Sprintf("external mnt[%s]:%s", maskedDirKey, empty)); err != nil {
		return 0, fmt.Errorf("restore %s: %w", c.ID, err)
	}
	ctr, err := libcontainer.Create(rt.StateDir, c.ID, cfg)
	if err != nil {
		return 0, fmt.Errorf("restore %s: %w", c.ID, err)
	}
	defer func() {
		if err != nil {
			destroy(ctx, ctr)
			destroyCgroup(ctx, c.CgroupPath)
		}
	}()
	devNull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("restore %s: %w", c.ID, err)
	}
	defer devNull.Close()
	proc := &libcontainer.Process{Args: []string{InitPath}, Init: true, Stdin: devNull, Stdout: devNull, Stderr: devNull}
	EnsureKerndatCache(ctx)
	opts := &libcontainer.CriuOpts{
		ImagesDirectory:   o.ImagesDir,
		ManageCgroupsMode: "ignore",
		TcpEstablished:    true,
		FileLocks:         true,
		LazyPages:         o.Lazy,
		StatusFd:          -1,
	}
	if err := runCRIU(ctx, o.ImagesDir, func() error { return ctr.Restore(proc, opts) }); err != nil {
		return 0, fmt.Errorf("restore %s: %w%s", c.ID, err, CRIULogError(filepath.Join(o.ImagesDir, "restore.log")))
	}
	if pid, err = proc.Pid(); err != nil {
		return 0, fmt.Errorf("restore %s: %w", c.ID, err)
	}
	return pid, nil
}

// runCRIU runs a libcontainer call that drives CRIU on imagesDir, unless
// ctx is done already, and, if ctx ends before it returns, kills that
// CRIU so the call returns instead of hanging (a lazy restore whose page
// source died waits forever otherwise).
//
// CRIU is found as the child of this process that holds imagesDir open:
// CRIU keeps its images directory as a descriptor for its whole run, and
// every run has a directory of its own. A name would not do: other
// migrations' CRIU runs share it, and the CRIU `make deps` installs runs
// under its own dynamic loader, whose name is the loader's. CRIU may not
// have opened the directory yet when ctx ends, so the search repeats
// until the call returns.
func runCRIU(ctx context.Context, imagesDir string, call func() error) error {
	if err := ctx.Err(); err != nil {
		return err // not even started
	}
	done := make(chan error, 1)
	go func() { done <- call() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	dir, err := filepath.EvalSymlinks(imagesDir)
	if err != nil {
		dir = filepath.Clean(imagesDir)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		killChildrenHolding(dir)
		select {
		case err := <-done:
			return fmt.Errorf("%w (criu: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// killableAfter is a context that ends with ctx, but not before safe is
// closed, or when stop is called.
func killableAfter(ctx context.Context, safe <-chan struct{}) (out context.Context, stop context.CancelFunc) {
	out, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer cancel()
		select {
		case <-safe:
		case <-out.Done():
			return
		}
		select {
		case <-ctx.Done():
		case <-out.Done():
		}
	}()
	return out, cancel
}

// killChildrenHolding SIGKILLs this process's children that have dir
// open or as their working directory.
func killChildrenHolding(dir string) {
	for _, pid := range processesHolding(dir, false, os.Getpid()) {
		unix.Kill(pid, unix.SIGKILL)
	}
}

// processesHolding lists the processes that have dir (or, with beneath,
// anything beneath it too) open or as their working directory; with
// parent > 0, only that process's children.
func processesHolding(dir string, beneath bool, parent int) []int {
	in := func(p string) bool {
		p = strings.TrimSuffix(p, " (deleted)")
		return p == dir || beneath && strings.HasPrefix(p, dir+"/")
	}
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if parent > 0 {
			if _, ppid, ok := procStat(pid); !ok || ppid != parent {
				continue
			}
		}
		if holdsPath(pid, in) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// holdsPath reports whether process pid has a path for which in is true
// open or as its working directory.
func holdsPath(pid int, in func(string) bool) bool {
	proc := "/proc/" + strconv.Itoa(pid)
	if cwd, err := os.Readlink(proc + "/cwd"); err == nil && in(cwd) {
		return true
	}
	fds, _ := os.ReadDir(proc + "/fd")
	for _, fd := range fds {
		if target, err := os.Readlink(proc + "/fd/" + fd.Name()); err == nil && in(target) {
			return true
		}
	}
	return false
}

// procStat returns the command name and the parent of a process, from
// /proc/PID/stat; ok is false if the process is gone.
func procStat(pid int) (comm string, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	s := string(b)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return "", 0, false
	}
	fields := strings.Fields(s[close+1:])
	if len(fields) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(fields[1])
	return s[open+1 : close], ppid, err == nil
}

// CRIULogError returns the first meaningful error line of a CRIU log (the
// cause; later ones are consequences), formatted to be appended to an
// error message ("" if there is none).
func CRIULogError(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var first string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// The missing CAP_SYS_RESOURCE's rlimit complaint is harmless.
		if line := sc.Text(); strings.Contains(line, "Error") && !strings.Contains(line, "RLIMIT_NOFILE") {
			first = strings.TrimSpace(line)
			break
		}
	}
	if first == "" {
		return ""
	}
	for _, h := range criuHints {
		if strings.Contains(first, h.match) {
			return fmt.Sprintf(" (%s: %s; %s)", filepath.Base(path), first, h.hint)
		}
	}
	return fmt.Sprintf(" (%s: %s)", filepath.Base(path), first)
}

// criuHints explain CRIU errors a pod's user can do something about.
var criuHints = []struct{ match, hint string }{
	// criu/tty.c, tty_verify_ctty: the check takes the first pty file
	// of the session it finds, the master another process holds (tmux,
	// xterm, script) when it comes first in the dump, for the session
	// leader's.
	{"ctty inheritance detected", "CRIU cannot dump a shell that holds /dev/tty open (dash does) in a terminal whose master another process of the pod holds (tmux, xterm): run bash there, which does not"},
}

// PageServer runs `criu page-server` writing the memory pages a dumping
// CRIU sends over sock into dir, and returns when the dump side is done
// (or ctx ends, which kills it).
func PageServer(ctx context.Context, dir string, sock *os.File) error {
	return runHelper(ctx, dir, "page-server.log", sock, "page-server")
}

// LazyPages runs `criu lazy-pages` for a lazy restore from dir: it serves
// the restored processes' page faults, and fetches every remaining page in
// the background, from the page server of the dumping CRIU at the other
// end of sock. It returns once all pages have been delivered.
func LazyPages(ctx context.Context, dir string, sock *os.File) error {
	return runHelper(ctx, dir, "lazy-pages.log", sock, "lazy-pages", "--page-server")
}

func runHelper(ctx context.Context, dir, logFile string, sock *os.File, args ...string) error {
	args = append(args, "--images-dir", dir, "--ps-socket", "3", "--log-file", logFile, "-v"+strconv.Itoa(criuLogLevel))
	cmd := exec.CommandContext(ctx, "criu", args...)
	cmd.ExtraFiles = []*os.File{sock}
	cmd.WaitDelay = time.Second
	// A dock that dies takes its page helpers with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("criu %s: %w%s%s", args[0], err, strings.TrimSpace(" "+string(out)), CRIULogError(filepath.Join(dir, logFile)))
	}
	return nil
}

// CRIUVersion asks the CRIU on PATH for its version ("" if it cannot).
func CRIUVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "criu", "--version").Output()
	if err != nil {
		return ""
	}
	var v string
	fmt.Sscanf(string(out), "Version: %s", &v)
	return v
}

// MemoryUsage is the memory a pod's cgroup uses, in bytes (0 if unknown).
func MemoryUsage(cgroupPath string) int64 {
	mgr, err := cgmanager.New(&cgroups.Cgroup{Path: cgroupPath, Resources: &cgroups.Resources{}})
	if err != nil {
		return 0
	}
	st, err := mgr.GetStats()
	if err != nil {
		return 0
	}
	return int64(st.MemoryStats.Usage.Usage)
}

// IsFrozen reports whether a pod's cgroup is frozen. While a freeze is
// under way it waits (up to 10 s on cgroup v2, in the cgroup library,
// which takes no context) for the cgroup to be frozen.
func IsFrozen(ctx context.Context, cgroupPath string) bool {
	mgr, err := cgmanager.New(&cgroups.Cgroup{Path: cgroupPath, Resources: &cgroups.Resources{}})
	if err != nil {
		return false
	}
	st, err := mgr.GetFreezerState()
	return err == nil && st == cgroups.Frozen
}
