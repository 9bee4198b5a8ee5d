package statedir

import (
	"os"

	"golang.org/x/sys/windows"
)

// errWouldBlock is lockFile's error for a lock another process holds.
var errWouldBlock = windows.ERROR_LOCK_VIOLATION

// lockFile takes an exclusive lock on f's first byte, waiting for it if
// block is set. Windows releases it when the handle is closed or the
// holder exits, like flock.
func lockFile(f *os.File, block bool) error {
	flags := uint32(windows.LOCKFILE_EXCLUSIVE_LOCK)
	if !block {
		flags |= windows.LOCKFILE_FAIL_IMMEDIATELY
	}
	return windows.LockFileEx(windows.Handle(f.Fd()), flags, 0, 1, 0, new(windows.Overlapped))
}
