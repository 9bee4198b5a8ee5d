//go:build amd64

package virtns

import (
	"os"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/checkpoint-restore/go-criu/v8/crit"
	corex86 "github.com/checkpoint-restore/go-criu/v8/crit/images/core-x86"
	criucore "github.com/checkpoint-restore/go-criu/v8/crit/images/criu-core"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func TestParsePollSyscall(t *testing.T) {
	for _, c := range []struct {
		line string
		want *pollWaiter
	}{
		// script(1) in its loop, as /proc showed it: poll(fds, 3, -1).
		{"7 0x7ffd34edcda0 0x3 0xffffffff 0x8 0x15 0x19 0x7ffd34edcd68 0x7f73b1e0d230\n",
			&pollWaiter{fds: 0x7ffd34edcda0, nfds: 3, timeout: 0xffffffff}},
		{"7 0x7ffd34edcda0 0x1 0xfffffffffffffffe 0x0 0x0 0x0 0x7ffd34edcd68 0x7f73b1e0d230",
			&pollWaiter{fds: 0x7ffd34edcda0, nfds: 1, timeout: 0xfffffffffffffffe}},
		{"7 0x7ffd34edcda0 0x3 0x3e8 0x8 0x15 0x19 0x7ffd34edcd68 0x7f73b1e0d230", nil}, // 1 s timeout
		{"7 0x7ffd34edcda0 0x3 0x0 0x8 0x15 0x19 0x7ffd34edcd68 0x7f73b1e0d230", nil},   // no wait
		{"230 0x0 0x0 0x7ffea307e5a0 0x7ffea307e5a0 0x15 0x19 0x7ffea307e588 0x7f466d94d503", nil},
		{"running\n", nil},
		{"-1 0x7ffea307e588 0x7f466d94d503", nil},
		{"", nil},
	} {
		w, ok := parsePollSyscall(c.line)
		if ok != (c.want != nil) || ok && w != *c.want {
			t.Errorf("parsePollSyscall(%q) = %+v, %v; want %+v", c.line, w, ok, c.want)
		}
	}
}

// TestFindPollWaiters finds a thread of this process that waits in a
// real poll(2) with no timeout, by its /proc files.
func TestFindPollWaiters(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tid := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // the thread ends with the goroutine
		tid <- unix.Gettid()
		fds := []unix.PollFd{{Fd: int32(r.Fd()), Events: unix.POLLIN}}
		for {
			// poll(2) itself: unix.Poll may call ppoll(2).
			_, _, errno := unix.Syscall(unix.SYS_POLL, uintptr(unsafe.Pointer(&fds[0])), 1, uintptr(^uint(0)))
			if errno != unix.EINTR {
				break
			}
		}
		close(done)
	}()
	want := <-tid
	deadline := time.Now().Add(10 * time.Second)
	for {
		ws, err := findPollWaiters([]int{os.Getpid()})
		if err != nil {
			t.Fatal(err)
		}
		var found []pollWaiter
		for _, w := range ws {
			if w.tid == want {
				found = append(found, w)
			}
		}
		if len(found) == 1 && found[0].nfds == 1 && int32(found[0].timeout) == -1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d not found waiting in poll(fds, 1, -1); found %+v", want, ws)
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.Write([]byte{1})
	w.Close()
	<-done
}

// coreImage is the core image of an x86-64 thread with registers r.
func coreImage(r *corex86.UserX86RegsEntry) *crit.CriuImage {
	core := &criucore.CoreEntry{
		Mtype:      criucore.CoreEntry_X86_64.Enum(),
		ThreadInfo: &corex86.ThreadInfoX86{ClearTidAddr: proto.Uint64(0), Gpregs: r, Fpregs: &corex86.UserX86FpregsEntry{}},
	}
	setRequired(core.ProtoReflect())
	return &crit.CriuImage{Magic: "CORE", Entries: []*crit.CriuEntry{{Message: core}}}
}

// setRequired gives every required field of m and its messages that is
// unset its zero value, so that m encodes.
func setRequired(m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		switch {
		case f.Kind() == protoreflect.MessageKind && !f.IsList() && m.Has(f):
			setRequired(m.Mutable(f).Message())
		case f.Cardinality() == protoreflect.Required && !m.Has(f):
			m.Set(f, m.NewField(f))
		}
	}
}

// pollRegs are the registers CRIU dumps for a thread interrupted in
// poll(0x1000, 3, -1): EINTR in rax, the interrupted call in orig_rax,
// rip past the syscall instruction.
func pollRegs(origAx uint64) *corex86.UserX86RegsEntry {
	return &corex86.UserX86RegsEntry{
		Ax: proto.Uint64(errEINTR), Di: proto.Uint64(0x1000), Si: proto.Uint64(3), Dx: proto.Uint64(0xffffffff),
		OrigAx: proto.Uint64(origAx), Ip: proto.Uint64(0x7f0000001002),
		Mode: corex86.UserX86RegsMode_NATIVE.Enum(),
	}
}

func TestRestartPolls(t *testing.T) {
	dir := t.TempDir()
	waiter := pollWaiter{fds: 0x1000, nfds: 3, timeout: 0xffffffff}
	other := pollRegs(sysRestartSyscallAmd64)
	other.Di = proto.Uint64(0x2000) // moved on to another poll since the freeze
	images := map[int]*corex86.UserX86RegsEntry{
		10: pollRegs(sysPollAmd64),           // dumped in poll itself
		11: pollRegs(sysRestartSyscallAmd64), // dumped in the restart of its poll
		12: other,
		13: pollRegs(230), // clock_nanosleep: not a poll
	}
	notEINTR := pollRegs(sysPollAmd64)
	notEINTR.Ax = proto.Uint64(1) // poll returned
	images[14] = notEINTR
	var ws []pollWaiter
	for tid, r := range images {
		if err := writeCoreImage(coreImagePath(dir, tid), coreImage(r)); err != nil {
			t.Fatal(err)
		}
		w := waiter
		w.tid = tid
		ws = append(ws, w)
	}
	n, err := restartPolls(dir, ws)
	if err != nil || n != 2 {
		t.Fatalf("restartPolls = %d, %v; want 2 threads rewritten", n, err)
	}
	for tid, want := range map[int][2]uint64{
		10: {sysPollAmd64, 0x7f0000001000},
		11: {sysPollAmd64, 0x7f0000001000},
		12: {errEINTR, 0x7f0000001002},
		13: {errEINTR, 0x7f0000001002},
		14: {1, 0x7f0000001002},
	} {
		img, err := readCoreImage(coreImagePath(dir, tid))
		if err != nil {
			t.Fatal(err)
		}
		r := img.Entries[0].Message.(*criucore.CoreEntry).GetThreadInfo().GetGpregs()
		if r.GetAx() != want[0] || r.GetIp() != want[1] {
			t.Errorf("thread %d: rax %#x rip %#x; want rax %#x rip %#x", tid, r.GetAx(), r.GetIp(), want[0], want[1])
		}
		if r.GetDi() != images[tid].GetDi() || r.GetDx() != 0xffffffff {
			t.Errorf("thread %d: arguments changed: rdi %#x rdx %#x", tid, r.GetDi(), r.GetDx())
		}
	}
	if _, err := restartPolls(dir, []pollWaiter{{tid: 99}}); err == nil {
		t.Error("restartPolls of a thread with no core image succeeded")
	}
}
