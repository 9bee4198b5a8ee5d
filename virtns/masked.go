package virtns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// maskedDirKey is the CRIU external-mount key of the directories a pod
// has masked (see maskedDirMounts).
const maskedDirKey = "podctl-masked-dir"

// maskedDirMounts returns the mount points, in the pod whose init is pid,
// of the mounts that hide its masked directories (/proc/acpi,
// /sys/firmware, ...): the read-only tmpfs libcontainer mounts there at
// create, or the read-only bind of an empty directory a restore mounts
// there instead (mountMaskedDir). A masked file is a bind mount of
// /dev/null, which libcontainer declares to CRIU itself.
//
// CRIU dumps a tmpfs by running tar on it and restores it with tar again,
// some 20 ms each way on this machine even for an empty one. Declared
// external, these mounts are not dumped at all, and the restore binds
// an empty read-only directory there, which hides what is beneath just
// the same.
func maskedDirMounts(pid int) ([]string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mounts, err := mountinfo.GetMountsFromReader(f, nil)
	if err != nil {
		return nil, fmt.Errorf("mounts of %d: %w", pid, err)
	}
	root := fmt.Sprintf("/proc/%d/root", pid)
	var dirs []string
	for _, m := range mounts {
		if !slices.Contains(maskedPaths, m.Mountpoint) || slices.Contains(dirs, m.Mountpoint) {
			continue
		}
		if fi, err := os.Stat(filepath.Join(root, m.Mountpoint)); err == nil && fi.IsDir() {
			dirs = append(dirs, m.Mountpoint)
		}
	}
	return dirs, nil
}

// MaskedMountDir is, in a pod's directory, where a restore mounts the
// source of its masked directories (mountMaskedDir) while CRIU runs.
// Rootfs.Remove unmounts it, should a crash have left it.
const MaskedMountDir = "masked"

// mountMaskedDir makes the source of a restored pod's masked directories
// at dir, in the pod's directory, and returns dir: the empty directory
// StateDir/masked, bind-mounted read-only, so that the bind mounts CRIU
// makes of it in the pod are read-only too (a bind mount keeps its
// source's read-only flag, and a pod has no CAP_SYS_ADMIN to lift it).
// unmountMaskedDir removes that mount once CRIU has cloned it; the empty
// directory stays, since the pod's mounts have it as their root and the
// next dump must find it (CRIU refuses a mount whose root is deleted).
func mountMaskedDir(stateDir, dir string) (string, error) {
	empty := filepath.Join(stateDir, "masked")
	if err := os.MkdirAll(empty, 0o555); err != nil {
		return "", err
	}
	if err := unmountAll(dir); err != nil { // left by a crash
		return "", err
	}
	if err := os.Mkdir(dir, 0o500); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	if err := unix.Mount(empty, dir, "", unix.MS_BIND, ""); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("bind %s: %w", dir, err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount("", dir, "", flags, ""); err != nil {
		unmountMaskedDir(dir)
		return "", fmt.Errorf("remount %s read-only: %w", dir, err)
	}
	return dir, nil
}

// unmountMaskedDir undoes mountMaskedDir's mount.
func unmountMaskedDir(dir string) error {
	if err := unmountAll(dir); err != nil {
		return err
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
