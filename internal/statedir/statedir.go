// Package statedir holds the crash-safe file primitives podctl keeps its
// state with: atomic file replacement, advisory locks that die with their
// holder, and leases (named claims on a resource such as an IP address or a
// host port).
//
// Everything is a plain file under one root directory, so several podctl
// "hosts" can share a machine by using different roots, and a podctl killed
// at any instruction leaves either the old or the new version of a file,
// never a torn one.
package statedir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// WriteFileAtomic replaces path with data: it writes a temporary file in
// the same directory, fsyncs it, renames it over path and fsyncs the
// directory, so readers see the old or the new content and a crash loses
// neither.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so that entries created, renamed or removed in
// it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// Lock is an exclusive advisory lock (flock) on a file. The kernel releases
// it when the holder exits, however it exits, which is what lets podctl tell
// an operation in progress from one whose process died.
type Lock struct{ f *os.File }

// ErrLocked is returned by TryLock when another process holds the lock.
var ErrLocked = errors.New("locked by another process")

// TryLock takes the lock on path without waiting, creating the file if
// needed. It returns ErrLocked when another process holds it.
func TryLock(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := lockFile(f, false); err != nil {
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// AcquireLock takes the lock on path, waiting until it is free or ctx is
// done. It polls rather than blocking in flock so that the wait can be
// cancelled.
func AcquireLock(ctx context.Context, path string) (*Lock, error) {
	delay := time.Millisecond
	for {
		l, err := TryLock(path)
		if !errors.Is(err, ErrLocked) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(delay):
		}
		if delay < 20*time.Millisecond {
			delay *= 2
		}
	}
}

// Unlock releases the lock. It is safe to call on a nil Lock.
func (l *Lock) Unlock() {
	if l != nil && l.f != nil {
		l.f.Close() // closing the last descriptor releases the flock
		l.f = nil
	}
}

// Leases is a directory of named claims. A lease is a file whose name is the
// claimed key (an address, "tcp-8080") and whose content is its owner.
// Take and Release hold an flock on the directory (Dir/.lock) while they
// look and change, so two processes can never both take one key, even when
// one of them reclaims a stale lease; a caller that also holds a lock
// around a whole allocation gets "first free key" semantics.
type Leases struct{ Dir string }

// lock serializes lease changes across processes. The critical sections
// are a few file operations, so it blocks in flock rather than polling.
func (l Leases) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(l.Dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock leases %s: %w", l.Dir, err)
	}
	if err := lockFile(f, true); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock leases %s: %w", l.Dir, err)
	}
	return func() { f.Close() }, nil
}

// Take claims key for owner. A key already held by an owner for which
// stale returns true is reclaimed (its owner died before releasing it). It
// returns (false, holder) when a live owner holds the key.
func (l Leases) Take(key, owner string, stale func(owner string) bool) (ok bool, holder string, err error) {
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return false, "", fmt.Errorf("lease %s: %w", key, err)
	}
	unlock, err := l.lock()
	if err != nil {
		return false, "", err
	}
	defer unlock()
	path := filepath.Join(l.Dir, key)
	for attempt := 0; attempt < 2; attempt++ {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, werr := f.WriteString(owner)
			if serr := f.Sync(); werr == nil {
				werr = serr
			}
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				os.Remove(path)
				return false, "", fmt.Errorf("lease %s: %w", key, werr)
			}
			return true, owner, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return false, "", fmt.Errorf("lease %s: %w", key, err)
		}
		holder, err := l.Owner(key)
		if err != nil {
			return false, "", err
		}
		if holder == owner {
			return true, owner, nil
		}
		if holder != "" && (stale == nil || !stale(holder)) {
			return false, holder, nil
		}
		// A stale lease (or a torn one left by a crash between create
		// and write): reclaim it and try again.
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, "", fmt.Errorf("lease %s: %w", key, err)
		}
	}
	return false, "", fmt.Errorf("lease %s: contended", key)
}

// Owner returns who holds key, or "" when nobody does.
func (l Leases) Owner(key string) (string, error) {
	b, err := os.ReadFile(filepath.Join(l.Dir, key))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("lease %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Release drops owner's claim on key. Releasing a key that owner does not
// hold is a no-op, so teardown can call it unconditionally.
func (l Leases) Release(key, owner string) error {
	if _, err := os.Stat(l.Dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	unlock, err := l.lock()
	if err != nil {
		return err
	}
	defer unlock()
	holder, err := l.Owner(key)
	if err != nil || holder != owner {
		return err
	}
	if err := os.Remove(filepath.Join(l.Dir, key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("release lease %s: %w", key, err)
	}
	return nil
}

// Held returns the keys held by owner.
func (l Leases) Held(owner string) ([]string, error) {
	all, err := l.All()
	if err != nil {
		return nil, err
	}
	var keys []string
	for k, o := range all {
		if o == owner {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// All returns every lease, key to owner.
func (l Leases) All() (map[string]string, error) {
	entries, err := os.ReadDir(l.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list leases in %s: %w", l.Dir, err)
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		o, err := l.Owner(e.Name())
		if err != nil {
			return nil, err
		}
		out[e.Name()] = o
	}
	return out, nil
}
