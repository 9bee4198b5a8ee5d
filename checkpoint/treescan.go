package checkpoint

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// Finding what changed in a directory tree between two moments, for a
// pre-copy: each round sends what changed since the previous one.
//
// Nothing is tracked while no migration runs: a round walks the tree and
// compares what lstat(2) says of each entry (inode, type and mode, size,
// ctime, mtime) with the previous walk. Any change to a file's data or
// metadata sets its ctime, which, unlike mtime, no unprivileged program
// can set back. But the kernel stamps ctime from a coarse clock (one
// tick, 1 to 10 ms), so a file written just after the previous walk
// looked at it, in the same tick, can show the same ctime and size as
// then. The rule git uses for its index ("racily clean" entries) closes
// that gap: an entry whose ctime was not older than the previous walk's
// start minus RacyWindow when that walk saw it is treated as changed,
// whatever the next walk sees. The last round, taken while the pod is
// frozen, therefore misses nothing. (Since Linux 6.13, ext4, xfs, btrfs
// and tmpfs stamp a change from a fine clock once the old ctime has been
// read, so there the gap no longer opens; the rule is for other kernels
// and filesystems, and costs only the re-sending of files changed in the
// last RacyWindow.)
//
// This is what the pre-copy of issue 19 is to use; nothing calls it yet.

// RacyWindow is how far before a walk's start a ctime must lie for the
// walk's view of the entry to be trusted: more than a kernel tick (10 ms
// at HZ=100), with room for the clock's coarse reading.
const RacyWindow = 50 * time.Millisecond

// EntryState is what a walk saw of one entry.
type EntryState struct {
	Ino   uint64
	Mode  uint32 // type and permission bits (st_mode)
	Size  int64
	Ctime int64 // nanoseconds since the epoch
	Mtime int64
}

// TreeState is what a walk saw of a directory tree: every entry by its
// slash-separated path relative to the root ("." for the root).
type TreeState struct {
	// Started is when the walk began.
	Started time.Time
	Entries map[string]EntryState
}

// ScanTree walks the tree rooted at dir, without following symbolic
// links, and records each entry. Cancelling ctx stops it between entries.
func ScanTree(ctx context.Context, dir string) (*TreeState, error) {
	ts := &TreeState{Started: time.Now(), Entries: map[string]EntryState{}}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		ts.Entries[filepath.ToSlash(rel)] = EntryState{
			Ino: st.Ino, Mode: st.Mode, Size: st.Size,
			Ctime: st.Ctim.Nano(), Mtime: st.Mtim.Nano(),
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", dir, err)
	}
	return ts, nil
}

// Changes compares two walks of the same tree, prev then next, and
// returns, sorted, the paths of next that are new or may have changed
// since prev (see RacyWindow), and the paths of prev that next did not
// find. A nil prev is an empty tree: every path of next is new.
func Changes(prev, next *TreeState) (changed, removed []string) {
	var racyBefore int64
	if prev != nil {
		racyBefore = prev.Started.Add(-RacyWindow).UnixNano()
	}
	for p, n := range next.Entries {
		if prev == nil {
			changed = append(changed, p)
			continue
		}
		o, ok := prev.Entries[p]
		if !ok || o != n || o.Ctime >= racyBefore {
			changed = append(changed, p)
		}
	}
	if prev != nil {
		for p := range prev.Entries {
			if _, ok := next.Entries[p]; !ok {
				removed = append(removed, p)
			}
		}
	}
	sort.Strings(changed)
	sort.Strings(removed)
	return changed, removed
}
