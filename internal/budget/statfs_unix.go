//go:build linux || darwin || freebsd

package budget

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// available is the space available to an unprivileged writer on the
// filesystem holding dir (the nearest existing ancestor of dir).
func available(dir string) (int64, error) {
	var st unix.Statfs_t
	for {
		err := unix.Statfs(dir, &st)
		if err == nil {
			return int64(st.Bavail) * int64(st.Bsize), nil
		}
		parent := filepath.Dir(dir)
		if err != unix.ENOENT || parent == dir {
			return 0, err
		}
		dir = parent
	}
}
