//go:build unix

package statedir

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// errWouldBlock is lockFile's error for a lock another process holds.
var errWouldBlock = unix.EWOULDBLOCK

// lockFile takes an exclusive flock on f, waiting for it if block is set.
func lockFile(f *os.File, block bool) error {
	how := unix.LOCK_EX
	if !block {
		how |= unix.LOCK_NB
	}
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
