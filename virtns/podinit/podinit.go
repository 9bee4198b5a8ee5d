// Package podinit is the program that runs as PID 1 of every pod. It is the
// podctl binary itself, bind-mounted into the pod and started by
// libcontainer as `/.podctl/init _podinit PATH -- ARGV...`.
//
// A pod's first process has duties an ordinary program does not fulfil,
// and CRIU depends on them:
//   - it is a session leader, so the pod's process tree is self-contained;
//   - it holds no file descriptor from the host: stdio is reopened on files
//     inside the pod (the log lives in the pod's writable layer) and
//     everything else is closed;
//   - it handles signals, which the kernel otherwise drops for a PID 1, and
//     forwards them to the payload's process group;
//   - it reaps every orphan, so no zombies accumulate.
//
// It exits with the payload's status, which it also records in the pod so
// that podctl can show it after the fact.
//
// When podinit, the C program in cmd/podinit, is installed next to podctl,
// pods use it instead (see virtns.DefaultInit): it does the same with one
// thread and a few pages, which CRIU dumps and restores faster. The two
// take the same arguments and write the same report, and must stay
// interchangeable.
package podinit

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/virtns"
)

// reportFd is the descriptor on which podctl waits for the start report.
const reportFd = 3

// forwarded are the signals passed on to the payload.
var forwarded = []os.Signal{
	unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH, unix.SIGCONT,
}

// Main runs the pod init with args = [PATH, "--", ARGV...]. It returns only
// on a usage error; otherwise it exits with the payload's status.
func Main(args []string) int {
	runtime.GOMAXPROCS(1)
	if len(args) < 3 || args[1] != "--" {
		fmt.Fprintln(os.Stderr, "podctl _podinit: usage: _podinit PATH -- ARGV...")
		return 2
	}
	path, argv := args[0], args[2:]
	report := os.NewFile(reportFd, "report")
	unix.CloseOnExec(reportFd)

	// Become a session leader. In a new PID namespace the init is not a
	// process-group leader, so this succeeds; EPERM means it already is.
	if _, err := unix.Setsid(); err != nil && !errors.Is(err, unix.EPERM) {
		fail(report, fmt.Errorf("setsid: %w", err))
	}
	if err := reopenStdio(); err != nil {
		fail(report, err)
	}
	closeFdsFrom(reportFd + 1)

	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, append(forwarded, unix.SIGCHLD)...)

	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		kind := errdefs.Internal
		switch {
		case errors.Is(err, unix.ENOENT):
			kind = errdefs.CommandNotFound
		case errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOEXEC):
			kind = errdefs.CommandNotExecutable
		}
		fail(report, errdefs.New(kind, "start %s: %w", path, err))
	}
	virtns.WriteReport(report, nil)
	report.Close()

	for sig := range sigs {
		if sig != unix.SIGCHLD {
			// The payload runs in its own process group; signal the
			// whole group so a shell's children stop too.
			unix.Kill(-pid, sig.(syscall.Signal))
			continue
		}
		if status, done := reap(pid); done {
			writeExit(status)
			os.Exit(status)
		}
	}
	return 0
}

// reap collects every exited child. It reports the payload's exit status
// once the payload itself has been collected.
func reap(payload int) (status int, done bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err != nil || pid <= 0 {
			return status, done
		}
		if pid == payload {
			done = true
			status = ws.ExitStatus()
			if ws.Signaled() {
				status = 128 + int(ws.Signal())
			}
		}
	}
}

// reopenStdio points stdin at the pod's /dev/null and stdout/stderr at the
// pod's log, replacing the host descriptors libcontainer started us with.
func reopenStdio() error {
	in, err := unix.Open("/dev/null", unix.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("open /dev/null: %w", err)
	}
	out, err := unix.Open(virtns.LogPath, unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open %s: %w", virtns.LogPath, err)
	}
	for _, d := range [][2]int{{in, 0}, {out, 1}, {out, 2}} {
		if err := unix.Dup3(d[0], d[1], 0); err != nil {
			return fmt.Errorf("dup stdio: %w", err)
		}
	}
	unix.Close(in)
	unix.Close(out)
	return nil
}

// closeFdsFrom closes every descriptor >= lowest that the Go runtime does
// not itself own (it keeps its own epoll and pipe descriptors CLOEXEC, and
// closing them would break it, so only non-CLOEXEC ones are closed: those
// are exactly the ones a payload would inherit).
func closeFdsFrom(lowest int) {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < lowest {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && flags&unix.FD_CLOEXEC == 0 {
			unix.Close(fd)
		}
	}
}

func writeExit(status int) {
	os.WriteFile(virtns.ExitPath, []byte(strconv.Itoa(status)+"\n"), 0o644)
}

func fail(report *os.File, err error) {
	virtns.WriteReport(report, err)
	os.Exit(int(errdefs.KindOf(err)))
}
