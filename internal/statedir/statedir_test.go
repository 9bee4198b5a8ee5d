package statedir

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockHelperEnv makes the test binary, re-executed by TestLockReleasedWhenHolderDies,
// take the lock named by its value, print "locked" and block forever.
const lockHelperEnv = "STATEDIR_TEST_LOCK_HELPER"

var helperLock *Lock

func TestMain(m *testing.M) {
	if path := os.Getenv(lockHelperEnv); path != "" {
		l, err := TryLock(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(3)
		}
		helperLock = l // reachable, so the GC never closes the file
		fmt.Println("locked")
		// Block until killed. Stdin is a pipe the parent never writes to;
		// EOF means the parent is gone, so do not outlive it.
		io.Copy(io.Discard, os.Stdin)
		os.Exit(4)
	}
	os.Exit(m.Run())
}

// waitFor polls cond until it is true or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileAtomicCreates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	data := []byte(`{"hello":"world"}` + "\n")
	if err := WriteFileAtomic(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(data) {
		t.Errorf("content = %q, want %q", got, data)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Mode().IsRegular() {
		t.Errorf("mode = %v, want a regular file", st.Mode())
	}
	if perm := st.Mode().Perm(); perm != 0o640 {
		t.Errorf("perm = %o, want 640", perm)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"state.json"}) {
		t.Errorf("directory holds %q, want only state.json (no temp files)", names)
	}
}

func TestWriteFileAtomicPermissions(t *testing.T) {
	dir := t.TempDir()
	// 0o666 and 0o755 would be reduced by a typical umask if the file were
	// created with them; WriteFileAtomic chmods, so they must stick.
	for i, perm := range []os.FileMode{0o600, 0o644, 0o666, 0o755, 0o400} {
		path := filepath.Join(dir, fmt.Sprintf("f%d", i))
		if err := WriteFileAtomic(path, []byte("x"), perm); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != perm {
			t.Errorf("perm %o: file has %o", perm, st.Mode().Perm())
		}
	}
}

func TestWriteFileAtomicReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old content that is longer than the new one"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Keep the old file open: an atomic replace gives a new inode, so a
	// reader that opened the old version still sees it intact.
	old, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldSt, _ := old.Stat()

	if err := WriteFileAtomic(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "new" {
		t.Errorf("content = %q, want %q", got, "new")
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("perm = %o, want 600 (the new perm, not the old file's)", st.Mode().Perm())
	}
	if os.SameFile(oldSt, st) {
		t.Errorf("file was rewritten in place, want a rename over it")
	}
	b := make([]byte, 100)
	n, _ := old.ReadAt(b, 0)
	if string(b[:n]) != "old content that is longer than the new one" {
		t.Errorf("old descriptor reads %q, want the old content", b[:n])
	}

	// Many replacements leave exactly one file behind.
	for i := 0; i < 20; i++ {
		if err := WriteFileAtomic(path, []byte(fmt.Sprint(i)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := os.ReadFile(path); string(got) != "19" {
		t.Errorf("content after 20 writes = %q, want 19", got)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"f"}) {
		t.Errorf("directory holds %q, want only f", names)
	}
}

func TestWriteFileAtomicEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty")
	if err := WriteFileAtomic(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 0 {
		t.Errorf("size = %d, want 0", st.Size())
	}
}

func TestWriteFileAtomicFailureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	// A directory in the way: the rename fails after the temp file was
	// written, and the temp file must be removed.
	target := filepath.Join(dir, "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(target, []byte("data"), 0o644); err == nil {
		t.Fatal("WriteFileAtomic over a non-empty directory succeeded, want an error")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"target"}) {
		t.Errorf("directory holds %q after a failed write, want only target", names)
	}
	if st, err := os.Stat(target); err != nil || !st.IsDir() {
		t.Errorf("target was damaged: %v, %v", st, err)
	}

	// A missing parent directory is an error, not a panic or a stray file.
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), []byte("x"), 0o644); err == nil {
		t.Error("WriteFileAtomic into a missing directory succeeded, want an error")
	}
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Errorf("SyncDir: %v", err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("SyncDir of a missing directory succeeded, want an error")
	}
}

func TestTryLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	l1, err := TryLock(path)
	if err != nil {
		t.Fatalf("first TryLock: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("lock file not created: %v", err)
	}
	// flock locks belong to the open file description, so a second open in
	// the same process conflicts.
	l2, err := TryLock(path)
	if !errors.Is(err, ErrLocked) {
		l2.Unlock()
		t.Fatalf("second TryLock = %v, want ErrLocked", err)
	}
	if l2 != nil {
		t.Errorf("second TryLock returned a non-nil Lock with ErrLocked")
	}
	l1.Unlock()
	l3, err := TryLock(path)
	if err != nil {
		t.Fatalf("TryLock after Unlock: %v", err)
	}
	l3.Unlock()
	l3.Unlock() // idempotent
	var nilLock *Lock
	nilLock.Unlock() // safe on nil

	if _, err := TryLock(filepath.Join(t.TempDir(), "missing", "lock")); err == nil || errors.Is(err, ErrLocked) {
		t.Errorf("TryLock in a missing directory = %v, want a non-ErrLocked error", err)
	}
}

func TestTryLockIndependentPaths(t *testing.T) {
	dir := t.TempDir()
	a, err := TryLock(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Unlock()
	b, err := TryLock(filepath.Join(dir, "b"))
	if err != nil {
		t.Fatalf("lock on another file: %v", err)
	}
	b.Unlock()
}

func TestAcquireLockWaitsForRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	held, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		l   *Lock
		err error
	}
	done := make(chan result, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		l, err := AcquireLock(context.Background(), path)
		done <- result{l, err}
	}()
	<-started
	select {
	case r := <-done:
		r.l.Unlock()
		t.Fatalf("AcquireLock returned (%v) while the lock was held", r.err)
	default:
	}
	held.Unlock()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("AcquireLock: %v", r.err)
		}
		// It really holds the lock now.
		if l, err := TryLock(path); !errors.Is(err, ErrLocked) {
			l.Unlock()
			t.Errorf("TryLock while AcquireLock's lock is held = %v, want ErrLocked", err)
		}
		r.l.Unlock()
	case <-time.After(10 * time.Second):
		t.Fatal("AcquireLock did not return within 10s of the release")
	}
}

func TestAcquireLockFree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := AcquireLock(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
}

func TestAcquireLockCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	held, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		l, err := AcquireLock(ctx, path)
		if err == nil {
			l.Unlock()
		}
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("AcquireLock after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AcquireLock ignored the cancellation")
	}

	// An already-expired deadline.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel2()
	<-ctx2.Done()
	if l, err := AcquireLock(ctx2, path); !errors.Is(err, context.DeadlineExceeded) {
		l.Unlock()
		t.Errorf("AcquireLock with an expired deadline = %v, want context.DeadlineExceeded", err)
	}
}

func TestLockReleasedWhenHolderDies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()

	lineCh := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lineCh <- line
	}()
	select {
	case line := <-lineCh:
		if strings.TrimSpace(line) != "locked" {
			t.Fatalf("helper printed %q, want \"locked\"", line)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper did not take the lock within 30s")
	}

	// The child holds it: this process cannot take it.
	if l, err := TryLock(path); !errors.Is(err, ErrLocked) {
		l.Unlock()
		t.Fatalf("TryLock while the child holds the lock = %v, want ErrLocked", err)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	werr := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(werr, &ee) {
		t.Fatalf("helper exited with %v, want killed by a signal", werr)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper exit status %v, want killed by SIGKILL", werr)
	}

	var l *Lock
	waitFor(t, 10*time.Second, "the dead holder's lock to be released", func() bool {
		var err error
		l, err = TryLock(path)
		if err != nil && !errors.Is(err, ErrLocked) {
			t.Fatalf("TryLock: %v", err)
		}
		return err == nil
	})
	l.Unlock()
}

func TestLeasesTakeOwnerRelease(t *testing.T) {
	ls := Leases{Dir: filepath.Join(t.TempDir(), "leases", "ip")} // created on demand

	if o, err := ls.Owner("10.0.0.2"); err != nil || o != "" {
		t.Fatalf("Owner of a free key = %q, %v; want \"\", nil", o, err)
	}
	if all, err := ls.All(); err != nil || len(all) != 0 {
		t.Fatalf("All with no directory = %v, %v; want empty, nil", all, err)
	}

	ok, holder, err := ls.Take("10.0.0.2", "pod-a", nil)
	if err != nil || !ok || holder != "pod-a" {
		t.Fatalf("Take = %v, %q, %v; want true, pod-a, nil", ok, holder, err)
	}
	if o, err := ls.Owner("10.0.0.2"); err != nil || o != "pod-a" {
		t.Fatalf("Owner = %q, %v; want pod-a", o, err)
	}
	if st, err := os.Stat(filepath.Join(ls.Dir, "10.0.0.2")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("lease file: %v, %v; want mode 600", st, err)
	}

	// Taking it again as the same owner is idempotent.
	ok, holder, err = ls.Take("10.0.0.2", "pod-a", nil)
	if err != nil || !ok || holder != "pod-a" {
		t.Fatalf("re-Take by owner = %v, %q, %v; want true, pod-a, nil", ok, holder, err)
	}

	// Another owner is refused and told who holds it; a stale callback that
	// says the holder is alive does not change that.
	aliveCalls := 0
	alive := func(o string) bool {
		aliveCalls++
		if o != "pod-a" {
			t.Errorf("stale called with %q, want pod-a", o)
		}
		return false
	}
	for _, stale := range []func(string) bool{nil, alive} {
		ok, holder, err = ls.Take("10.0.0.2", "pod-b", stale)
		if err != nil || ok || holder != "pod-a" {
			t.Fatalf("Take by another owner = %v, %q, %v; want false, pod-a, nil", ok, holder, err)
		}
	}
	if aliveCalls != 1 {
		t.Errorf("stale called %d times, want 1", aliveCalls)
	}
	if o, _ := ls.Owner("10.0.0.2"); o != "pod-a" {
		t.Fatalf("a refused Take changed the owner to %q", o)
	}

	// Release by a non-owner is a no-op.
	if err := ls.Release("10.0.0.2", "pod-b"); err != nil {
		t.Fatalf("Release by non-owner: %v", err)
	}
	if o, _ := ls.Owner("10.0.0.2"); o != "pod-a" {
		t.Fatalf("Release by non-owner dropped the lease (owner now %q)", o)
	}
	// Release of a key nobody holds is a no-op too.
	if err := ls.Release("10.0.0.99", "pod-a"); err != nil {
		t.Fatalf("Release of a free key: %v", err)
	}

	// Release by the owner frees it for someone else.
	if err := ls.Release("10.0.0.2", "pod-a"); err != nil {
		t.Fatal(err)
	}
	if o, err := ls.Owner("10.0.0.2"); err != nil || o != "" {
		t.Fatalf("Owner after Release = %q, %v; want free", o, err)
	}
	ok, holder, err = ls.Take("10.0.0.2", "pod-b", nil)
	if err != nil || !ok || holder != "pod-b" {
		t.Fatalf("Take after Release = %v, %q, %v; want true, pod-b, nil", ok, holder, err)
	}
}

func TestLeasesHeldAndAll(t *testing.T) {
	ls := Leases{Dir: t.TempDir()}
	take := func(key, owner string) {
		t.Helper()
		if ok, h, err := ls.Take(key, owner, nil); err != nil || !ok {
			t.Fatalf("Take(%s, %s) = %v, %q, %v", key, owner, ok, h, err)
		}
	}
	take("tcp-80", "a")
	take("tcp-443", "a")
	take("udp-53", "b")
	take("10.0.0.3", "c")
	// Dot files (hint files, temp files) are not leases.
	if err := os.WriteFile(filepath.Join(ls.Dir, ".next"), []byte("10.0.0.4"), 0o600); err != nil {
		t.Fatal(err)
	}

	all, err := ls.All()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"tcp-80": "a", "tcp-443": "a", "udp-53": "b", "10.0.0.3": "c"}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Errorf("All = %v, want %v", all, want)
	}

	held := func(owner string) []string {
		t.Helper()
		keys, err := ls.Held(owner)
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(keys)
		return keys
	}
	if got := held("a"); !slices.Equal(got, []string{"tcp-443", "tcp-80"}) {
		t.Errorf("Held(a) = %q", got)
	}
	if got := held("b"); !slices.Equal(got, []string{"udp-53"}) {
		t.Errorf("Held(b) = %q", got)
	}
	if got := held("nobody"); len(got) != 0 {
		t.Errorf("Held(nobody) = %q, want none", got)
	}

	if err := ls.Release("tcp-80", "a"); err != nil {
		t.Fatal(err)
	}
	if got := held("a"); !slices.Equal(got, []string{"tcp-443"}) {
		t.Errorf("Held(a) after Release = %q", got)
	}
}

func TestLeasesOwnerTrimsWhitespace(t *testing.T) {
	ls := Leases{Dir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(ls.Dir, "k"), []byte("owner\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if o, err := ls.Owner("k"); err != nil || o != "owner" {
		t.Errorf("Owner = %q, %v; want owner", o, err)
	}
	// The owner can still take (idempotently) and release it.
	if ok, _, err := ls.Take("k", "owner", nil); err != nil || !ok {
		t.Errorf("Take by owner = %v, %v", ok, err)
	}
	if err := ls.Release("k", "owner"); err != nil {
		t.Fatal(err)
	}
	if o, _ := ls.Owner("k"); o != "" {
		t.Errorf("Owner after Release = %q", o)
	}
}

func TestLeasesStaleReclaim(t *testing.T) {
	ls := Leases{Dir: t.TempDir()}
	if ok, _, err := ls.Take("k", "dead", nil); err != nil || !ok {
		t.Fatal(ok, err)
	}
	var asked []string
	stale := func(o string) bool {
		asked = append(asked, o)
		return o == "dead"
	}
	ok, holder, err := ls.Take("k", "alive", stale)
	if err != nil || !ok || holder != "alive" {
		t.Fatalf("Take over a stale lease = %v, %q, %v; want true, alive, nil", ok, holder, err)
	}
	if !slices.Equal(asked, []string{"dead"}) {
		t.Errorf("stale asked about %q, want [dead]", asked)
	}
	if o, _ := ls.Owner("k"); o != "alive" {
		t.Fatalf("Owner after reclaim = %q, want alive", o)
	}
	// The new, live owner is not reclaimed.
	ok, holder, err = ls.Take("k", "other", stale)
	if err != nil || ok || holder != "alive" {
		t.Fatalf("Take over a live lease = %v, %q, %v; want false, alive, nil", ok, holder, err)
	}
}

func TestLeasesTornLeaseReclaimed(t *testing.T) {
	// A crash between create and write leaves an empty lease file; it
	// belongs to nobody and is reclaimed even without a stale callback.
	ls := Leases{Dir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(ls.Dir, "k"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ok, holder, err := ls.Take("k", "me", nil)
	if err != nil || !ok || holder != "me" {
		t.Fatalf("Take over a torn lease = %v, %q, %v; want true, me, nil", ok, holder, err)
	}
	if o, _ := ls.Owner("k"); o != "me" {
		t.Errorf("Owner = %q, want me", o)
	}
}

func TestLeasesConcurrentTake(t *testing.T) {
	const (
		rounds     = 200
		goroutines = 20
	)
	ls := Leases{Dir: t.TempDir()}
	for r := 0; r < rounds; r++ {
		key := fmt.Sprintf("key-%d", r)
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			mu      sync.Mutex
			winners []string
			holders = map[string]bool{}
			errs    []error
		)
		for g := 0; g < goroutines; g++ {
			owner := fmt.Sprintf("owner-%d", g)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ok, holder, err := ls.Take(key, owner, nil)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				if ok {
					winners = append(winners, owner)
				} else {
					holders[holder] = true
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("round %d: Take errors: %v", r, errs)
		}
		if len(winners) != 1 {
			o, _ := ls.Owner(key)
			t.Fatalf("round %d: %d goroutines won key %s (%q); want exactly 1 (file owner now %q)",
				r, len(winners), key, winners, o)
		}
		o, err := ls.Owner(key)
		if err != nil || o != winners[0] {
			t.Fatalf("round %d: Owner = %q, %v; want the winner %q", r, o, err, winners[0])
		}
		for h := range holders {
			if h != winners[0] {
				t.Errorf("round %d: a loser was told the holder is %q, want %q", r, h, winners[0])
			}
		}
	}
}

// TestLeasesStaleReclaimRace replays, deterministically, two processes
// reclaiming the same stale lease: while the first is still deciding that
// the dead holder is stale, the second reclaims the key. The first must then
// see the new, live holder, not delete its lease and take the key as well.
func TestLeasesStaleReclaimRace(t *testing.T) {
	ls := Leases{Dir: t.TempDir()}
	if ok, _, err := ls.Take("k", "dead", nil); err != nil || !ok {
		t.Fatal(ok, err)
	}
	isDead := func(o string) bool { return o == "dead" }
	// While a is deciding that the holder is dead, b tries to reclaim the
	// key too. b runs in its own goroutine (as it would in its own
	// process): with Take serialized, it must wait for a to finish, then
	// find a's live lease.
	type result struct {
		ok     bool
		holder string
		err    error
	}
	bDone := make(chan result, 1)
	started := false
	staleA := func(o string) bool {
		if o == "dead" && !started {
			started = true
			go func() {
				ok, holder, err := ls.Take("k", "b", isDead)
				bDone <- result{ok, holder, err}
			}()
		}
		return isDead(o)
	}
	aOK, _, err := ls.Take("k", "a", staleA)
	if err != nil || !aOK {
		t.Fatalf("a: ok %v err %v, want a to reclaim the dead holder's key", aOK, err)
	}
	var b result
	select {
	case b = <-bDone:
	case <-time.After(10 * time.Second):
		t.Fatal("b's Take never returned")
	}
	if b.err != nil || b.ok || b.holder != "a" {
		t.Fatalf("b: ok %v holder %q err %v; want refused, held by a", b.ok, b.holder, b.err)
	}
	if owner, _ := ls.Owner("k"); owner != "a" {
		t.Errorf("owner %q, want a", owner)
	}
}
