package virtns

import (
	"context"
	"fmt"
	"time"

	"github.com/opencontainers/cgroups"
	cgmanager "github.com/opencontainers/cgroups/manager"
	"golang.org/x/sys/unix"
)

// vforkGrace bounds how long Freeze waits for the pod to leave vfork
// before it gives up. It is shorter than CRIU's own timeout (10 s), so
// that a pod that cannot be dumped is reported as such.
const vforkGrace = 5 * time.Second

// Freeze stops every process of the pod's cgroup with the freezer, so the
// pod can be dumped while it stays able to resume (Thaw). It returns the
// last moment the pod ran.
//
// A pod frozen while one of its processes waits in vfork(2) cannot be
// dumped: CRIU stops each process with a ptrace interrupt once the cgroup
// is thawed for it, but a vfork parent sleeps until its child calls exec
// or exits, and only a fatal signal wakes it; the child, stopped by CRIU
// too, never gets there, and CRIU gives up after its 10 s timeout. A
// shell running commands in a loop is in that state for a few
// microseconds per command (dash vforks), so a checkpoint meets it now
// and then. Freeze therefore checks the frozen pod for a vfork parent
// (a process whose child shares its address space) and, if it finds one,
// thaws the pod, waits until that child has called exec or exited, and
// freezes it again. It gives up with an error after vforkGrace.
func Freeze(ctx context.Context, cgroupPath string) (lastRan time.Time, err error) {
	mgr, err := freezerManager(cgroupPath)
	if err != nil {
		return time.Time{}, err
	}
	deadline := time.Now().Add(vforkGrace)
	for {
		lastRan = time.Now()
		if err := setFreezer(mgr, cgroupPath, cgroups.Frozen); err != nil {
			return time.Time{}, err
		}
		parent, child, err := findVfork(mgr)
		if err == nil && parent == 0 {
			return lastRan, nil
		}
		if terr := setFreezer(mgr, cgroupPath, cgroups.Thawed); terr != nil {
			return time.Time{}, fmt.Errorf("%w (and thawing failed: %v)", err, terr)
		}
		if err != nil {
			return time.Time{}, err
		}
		for sharesVM(parent, child) {
			if time.Now().After(deadline) {
				return time.Time{}, fmt.Errorf("cgroup %s: process %d has waited in vfork for its child %d to exec for over %s: the pod cannot be frozen for a dump", cgroupPath, parent, child, vforkGrace)
			}
			select {
			case <-ctx.Done():
				return time.Time{}, fmt.Errorf("cgroup %s: freeze: %w", cgroupPath, ctx.Err())
			case <-time.After(time.Millisecond):
			}
		}
	}
}

// Thaw resumes a frozen pod. It is what undoes a Freeze, so it runs even
// when ctx is cancelled.
func Thaw(ctx context.Context, cgroupPath string) error {
	mgr, err := freezerManager(cgroupPath)
	if err != nil {
		return err
	}
	return setFreezer(mgr, cgroupPath, cgroups.Thawed)
}

func freezerManager(path string) (cgroups.Manager, error) {
	mgr, err := cgmanager.New(&cgroups.Cgroup{Path: path, Resources: &cgroups.Resources{}})
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", path, err)
	}
	return mgr, nil
}

// freezeRetry bounds how long setFreezer keeps trying to freeze a cgroup
// whose tasks do not all stop at once.
const freezeRetry = 5 * time.Second

// setFreezer sets the cgroup's freezer state. libcontainer's cgroup v1
// freezer gives up ("unable to freeze") after about ten milliseconds of
// tasks that stay freezing, which a busy machine exceeds (eight pods
// restored at once on two cores did): freezing is tried again until
// freezeRetry has passed.
func setFreezer(mgr cgroups.Manager, path string, state cgroups.FreezerState) error {
	deadline := time.Now().Add(freezeRetry)
	for {
		err := mgr.Freeze(state)
		if err == nil {
			return nil
		}
		if state != cgroups.Frozen || time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: set freezer %s: %w", path, state, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// findVfork returns a process of the cgroup that waits in vfork and its
// child, or zeros if none does. A vfork child runs in its parent's address
// space until it calls exec or exits; no other process of a pod shares
// another's (CRIU could not dump it), so a child that shares its parent's
// is a vfork child.
func findVfork(mgr cgroups.Manager) (parent, child int, err error) {
	pids, err := mgr.GetAllPids()
	if err != nil {
		return 0, 0, fmt.Errorf("list the pod's processes: %w", err)
	}
	in := make(map[int]bool, len(pids))
	for _, pid := range pids {
		in[pid] = true
	}
	for _, pid := range pids {
		if _, ppid, ok := procStat(pid); ok && in[ppid] && sharesVM(ppid, pid) {
			return ppid, pid, nil
		}
	}
	return 0, 0, nil
}

// kcmpVM is kcmp(2)'s KCMP_VM: do two processes share an address space.
const kcmpVM = 1

// sharesVM reports whether two live processes share an address space.
func sharesVM(a, b int) bool {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(a), uintptr(b), kcmpVM, 0, 0, 0)
	return errno == 0 && r == 0
}
