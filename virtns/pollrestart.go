package virtns

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/checkpoint-restore/go-criu/v8/crit"
	corex86 "github.com/checkpoint-restore/go-criu/v8/crit/images/core-x86"
	criucore "github.com/checkpoint-restore/go-criu/v8/crit/images/criu-core"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// Restarting poll(2) after a restore.
//
// A thread blocked in poll(2) when the pod freezes leaves the call with
// -ERESTART_RESTARTBLOCK: the kernel would resume it transparently
// through restart_syscall(2), from a restart block it keeps in the
// task (the same poll, with what is left of its timeout). CRIU cannot
// carry that block, so it dumps the thread as if the call had failed
// with EINTR (compel, get_task_regs: "Will restore ... with interrupted
// system call"), and the restored thread sees poll fail with EINTR.
//
// No kernel event does that to a program without signal handlers: poll
// fails with EINTR only when a handler has run. Programs that take
// signals through signalfd(2), with every signal blocked, rightly treat
// it as an error. util-linux's script(1) is one: it leaves its loop,
// kills its shell and exits, two seconds after every restore.
//
// For a poll with no timeout (a negative one), restarting the call with
// the arguments it had is exactly what the kernel's restart would have
// done. So before the dump, while the pod is frozen, podctl notes every
// thread whose current system call is such a poll (its number and
// arguments, from /proc/PID/task/TID/syscall); after the dump, it
// rewrites each one's registers in its core image to execute the same
// poll again: the system call number in rax and the instruction pointer
// back onto the 2-byte syscall instruction. It rewrites a thread only if
// its dumped registers still hold poll's arguments and show the call
// interrupted (CRIU's EINTR), so a thread that moved on between the
// freeze and the dump is left as CRIU dumped it. A poll with a timeout
// keeps CRIU's EINTR: restarting it would wait the whole timeout again.
//
// The system call numbers and the 2-byte instruction are x86-64's; on
// other architectures the images are left alone.

// x86-64 system call numbers and registers.
const (
	sysPollAmd64           = 7   // poll(2)
	sysRestartSyscallAmd64 = 219 // restart_syscall(2)
	syscallInsnLenAmd64    = 2   // "syscall" is 0f 05
)

// errEINTR is -EINTR as a 64-bit register holds it.
const errEINTR = math.MaxUint64 - uint64(unix.EINTR) + 1

// pollWaiter is a thread found blocked in poll(2) with no timeout while
// its pod was frozen.
type pollWaiter struct {
	// tid is the thread's ID in the pod's PID namespace, which names its
	// core image (core-TID.img).
	tid int
	// fds, nfds and timeout are poll's arguments (rdi, rsi, rdx).
	fds, nfds, timeout uint64
}

// findPollWaiters returns the threads of the processes pids (host PIDs of
// a frozen pod) that are blocked in poll(2) with a negative timeout. A
// process or thread that has gone meanwhile is skipped.
func findPollWaiters(pids []int) ([]pollWaiter, error) {
	if runtime.GOARCH != "amd64" {
		return nil, nil
	}
	var ws []pollWaiter
	for _, pid := range pids {
		taskDir := fmt.Sprintf("/proc/%d/task", pid)
		tids, err := os.ReadDir(taskDir)
		if err != nil {
			continue // exited
		}
		for _, t := range tids {
			dir := filepath.Join(taskDir, t.Name())
			b, err := os.ReadFile(filepath.Join(dir, "syscall"))
			if err != nil {
				continue
			}
			w, ok := parsePollSyscall(string(b))
			if !ok {
				continue
			}
			if w.tid, err = nsTID(filepath.Join(dir, "status")); err != nil {
				return nil, err
			}
			ws = append(ws, w)
		}
	}
	return ws, nil
}

// parsePollSyscall reads a /proc/PID/task/TID/syscall line ("NR ARG1 ...
// ARG6 SP PC", or "running", or "-1 SP PC") and reports whether it shows
// poll(2) with a negative timeout, and with which arguments.
func parsePollSyscall(line string) (pollWaiter, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || f[0] != strconv.Itoa(sysPollAmd64) {
		return pollWaiter{}, false
	}
	var args [3]uint64
	for i := range args {
		v, err := strconv.ParseUint(strings.TrimPrefix(f[i+1], "0x"), 16, 64)
		if err != nil {
			return pollWaiter{}, false
		}
		args[i] = v
	}
	// poll's timeout is an int: the low 32 bits of rdx.
	if int32(args[2]) >= 0 {
		return pollWaiter{}, false
	}
	return pollWaiter{fds: args[0], nfds: args[1], timeout: args[2]}, true
}

// nsTID reads a thread's ID in its innermost PID namespace: the last
// field of the NSpid line of its /proc status file.
func nsTID(statusPath string) (int, error) {
	b, err := os.ReadFile(statusPath)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.Atoi(f[len(f)-1])
		}
	}
	return 0, fmt.Errorf("%s: no NSpid line", statusPath)
}

// restartPolls rewrites, in the CRIU images of imagesDir, the registers
// of every waiter that the dump caught in its poll, so that the restored
// thread calls poll again instead of seeing EINTR. It returns how many
// threads it rewrote.
func restartPolls(imagesDir string, ws []pollWaiter) (int, error) {
	n := 0
	for _, w := range ws {
		path := coreImagePath(imagesDir, w.tid)
		img, err := readCoreImage(path)
		if err != nil {
			return n, err
		}
		if !restartPoll(img, w) {
			continue
		}
		if err := writeCoreImage(path, img); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// restartPoll points the dumped thread of img back at w's poll, if its
// registers show that poll interrupted; it reports whether it did.
func restartPoll(img *crit.CriuImage, w pollWaiter) bool {
	if len(img.Entries) != 1 {
		return false
	}
	core, ok := img.Entries[0].Message.(*criucore.CoreEntry)
	if !ok || core.GetMtype() != criucore.CoreEntry_X86_64 {
		return false
	}
	r := core.GetThreadInfo().GetGpregs()
	if r == nil || r.GetMode() != corex86.UserX86RegsMode_NATIVE {
		return false
	}
	orig := r.GetOrigAx()
	if orig != sysPollAmd64 && orig != sysRestartSyscallAmd64 {
		return false
	}
	if r.GetAx() != errEINTR || r.GetDi() != w.fds || r.GetSi() != w.nfds || r.GetDx() != w.timeout {
		return false
	}
	// rip is just past the syscall instruction (CRIU turned only the
	// return value into EINTR): step back onto it, with poll's number.
	r.Ax = proto.Uint64(sysPollAmd64)
	r.Ip = proto.Uint64(r.GetIp() - syscallInsnLenAmd64)
	return true
}

// coreImagePath is where CRIU dumps the registers and state of the
// thread tid (its ID in the pod's PID namespace).
func coreImagePath(imagesDir string, tid int) string {
	return filepath.Join(imagesDir, "core-"+strconv.Itoa(tid)+".img")
}

// readCoreImage decodes a CRIU core image.
func readCoreImage(path string) (*crit.CriuImage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := crit.New(f, nil, "", false, false).Decode(&criucore.CoreEntry{})
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return img, nil
}

// writeCoreImage replaces the core image at path with img, atomically.
func writeCoreImage(path string, img *crit.CriuImage) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".core-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := crit.New(nil, tmp, "", false, false).Encode(img); err != nil {
		tmp.Close()
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
