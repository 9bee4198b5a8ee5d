package virtns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"golang.org/x/sys/unix"
)

// A pod's /dev is a directory of its root filesystem, not a tmpfs, and so
// is /dev/shm: CRIU dumps the contents of every tmpfs a pod has by running
// tar (and gzip) on it, and restores it by running tar again, some 10 to
// 30 ms per tmpfs each way, more than half of an idle pod's dump. In the
// writable layer the files of /dev and /dev/shm travel with the layer
// instead, at no cost to the dump. The device nodes do not travel
// (archives carry no devices, see checkpoint.Writer.AddUpperLayer):
// libcontainer makes them when the pod is created (prepareShm makes
// /dev/shm), and prepareDev makes them again before a restore.

// shmMode is /dev/shm's mode, the tmpfs's it replaces: anyone may create a
// segment there, and only its owner remove it.
const shmMode = fs.ModeDir | fs.ModeSticky | 0o777

// IsPodDevice reports whether the character device rdev at path (absolute,
// inside the pod) is one of the device nodes every pod's /dev holds
// (libcontainer's default devices: null, zero, full, random, urandom,
// tty), which a pod's archive leaves out and its restore makes again.
func IsPodDevice(path string, rdev uint64) bool {
	for _, d := range specconv.AllowedDevices {
		if d.Path == path && d.Type == 'c' && unix.Mkdev(uint32(d.Major), uint32(d.Minor)) == rdev {
			return true
		}
	}
	return false
}

// prepareShm makes /dev/shm, mode 1777, in the root filesystem at rootfs,
// for a pod about to be created (libcontainer makes its device nodes).
// Paths resolve inside rootfs, so an image's symbolic links cannot lead
// it outside. No process of the pod runs while it does this.
func prepareShm(rootfs string) error {
	shm, err := securejoin.SecureJoin(rootfs, "/dev/shm")
	if err != nil {
		return fmt.Errorf("/dev/shm: %w", err)
	}
	if err := os.MkdirAll(shm, 0o755); err != nil {
		return fmt.Errorf("/dev/shm: %w", err)
	}
	if err := os.Chmod(shm, shmMode); err != nil {
		return fmt.Errorf("/dev/shm: %w", err)
	}
	return nil
}

// prepareDev is prepareShm for a pod about to be restored, which also
// needs its device nodes made again (its archive has none): each
// replaces whatever else is at its path.
func prepareDev(rootfs string) error {
	if err := prepareShm(rootfs); err != nil {
		return err
	}
	for _, d := range specconv.AllowedDevices {
		if d.Path == "" || d.Type != 'c' {
			continue
		}
		p, err := securejoin.SecureJoin(rootfs, d.Path)
		if err != nil {
			return fmt.Errorf("%s: %w", d.Path, err)
		}
		rdev := unix.Mkdev(uint32(d.Major), uint32(d.Minor))
		var st unix.Stat_t
		switch err := unix.Lstat(p, &st); {
		case err == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == rdev:
			continue
		case err == nil:
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("%s: %w", d.Path, err)
			}
		case !errors.Is(err, unix.ENOENT):
			return fmt.Errorf("%s: %w", d.Path, err)
		}
		if err := unix.Mknod(p, unix.S_IFCHR|uint32(d.FileMode.Perm()), int(rdev)); err != nil {
			return fmt.Errorf("%s: %w", d.Path, err)
		}
		// mknod(2) applies the umask.
		if err := os.Chmod(p, d.FileMode.Perm()); err != nil {
			return fmt.Errorf("%s: %w", d.Path, err)
		}
		if err := os.Lchown(p, int(d.Uid), int(d.Gid)); err != nil {
			return fmt.Errorf("%s: %w", d.Path, err)
		}
	}
	return nil
}
