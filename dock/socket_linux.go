//go:build linux

package dock

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// socketPair returns a connected pair of stream sockets: one end for
// podctl, one to hand to a CRIU helper process (--ps-socket).
func socketPair() (ours, theirs *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "ps-ours"), os.NewFile(uintptr(fds[1]), "ps-theirs"), nil
}

// shutdownWrite ends the sending side of c, if it has one of its own.
func shutdownWrite(c io.Closer) {
	switch c := c.(type) {
	case halfCloser:
		c.CloseWrite()
	case *os.File:
		if rc, err := c.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_WR) })
		}
	}
}
