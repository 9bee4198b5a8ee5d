// Package virtns is podctl's virtualization layer: the namespaces, root
// filesystem, cgroup and network a pod lives in. It turns a pod's
// description into kernel objects (through runc's libcontainer, netlink and
// nftables) and takes them apart again. It knows nothing of podctl's state
// store; package pod drives it.
package virtns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/internal/errdefs"
)

// Layout of a pod's root filesystem on the host, relative to the pod's
// directory.
const (
	// UpperDir is the pod's private writable layer: every file the pod
	// writes lands here. It is what a checkpoint carries.
	UpperDir = "upper"
	workDir  = "work"
	// RootfsDir is where the overlay (image + writable layer) is mounted.
	RootfsDir = "rootfs"
)

// InPodDir is the directory, inside the pod, where podctl keeps the pod
// init binary and the pod's log. It lives in the writable layer so that it
// travels with the pod.
const InPodDir = "/.podctl"

// Paths inside the pod.
const (
	// InitPath is where the pod init binary is bind-mounted.
	InitPath = InPodDir + "/init"
	// PodctlPath is where a pod housing a vessel has the podctl binary
	// that runs the vessel's supervisor.
	PodctlPath = InPodDir + "/podctl"
	// LogPath is the pod's stdout and stderr.
	LogPath = InPodDir + "/pod.log"
	// ExitPath receives the payload's exit status when it ends.
	ExitPath = InPodDir + "/exit"
)

// privateDirs are hidden from the host image: the pod gets its own, empty
// ones in its writable layer.
var privateDirs = []string{"tmp", "run", "var/tmp", "root", "home"}

// hostSecrets are the host's files a pod of the host image must not read
// (its processes run as root): password hashes and the SSH host keys.
// They are whited out of the pod's view. The rest of the host's software
// and configuration stays visible: that is what the host image is for;
// a pod that must not see the host's data runs on an image directory.
var hostSecrets = []string{"etc/shadow", "etc/shadow-", "etc/gshadow", "etc/gshadow-", "etc/ssh/ssh_host_*key"}

// Rootfs describes a pod's root filesystem.
type Rootfs struct {
	// Image is the lower, read-only layer: "/" for the host image or a
	// root filesystem directory.
	Image string
	// PodDir is the pod's directory; the writable layer and the mount
	// point live in it.
	PodDir string
	// Hostname is written to the pod's /etc/hostname and /etc/hosts.
	Hostname string
	// Hide lists host directories (absolute) that must not be visible in
	// the pod when they lie inside Image, such as podctl's own state root
	// and PKI directory: the pod sees each as an empty directory, even
	// one made on the host after the pod started.
	Hide []string
}

// ValidateImage checks that dir looks like a root filesystem: an existing
// directory with etc/ and a bin/ or usr/bin/.
func ValidateImage(dir string) error {
	if !filepath.IsAbs(dir) {
		return errdefs.New(errdefs.InvalidImage, "image %q: must be \"host\" or an absolute path", dir)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return errdefs.New(errdefs.InvalidImage, "image %s: %w", dir, err)
	}
	if !st.IsDir() {
		return errdefs.New(errdefs.InvalidImage, "image %s: not a directory", dir)
	}
	isDir := func(rel string) bool {
		p, err := securejoin.SecureJoin(dir, rel)
		if err != nil {
			return false
		}
		st, err := os.Stat(p)
		return err == nil && st.IsDir()
	}
	if !isDir("etc") || (!isDir("bin") && !isDir("usr/bin")) {
		return errdefs.New(errdefs.InvalidImage, "image %s: not a root filesystem (no etc/ and bin/ or usr/bin/)", dir)
	}
	return nil
}

// Mount prepares the writable layer and mounts the overlay at
// PodDir/rootfs. It is idempotent: a rootfs already mounted is left alone.
func (r Rootfs) Mount(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mount rootfs: %w", err)
	}
	upper := filepath.Join(r.PodDir, UpperDir)
	work := filepath.Join(r.PodDir, workDir)
	target := filepath.Join(r.PodDir, RootfsDir)
	for _, d := range []string{upper, work, target, filepath.Join(upper, InPodDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("mount rootfs: %w", err)
		}
	}
	if mounted, err := isMountPoint(target); err != nil {
		return err
	} else if mounted {
		return nil
	}
	if err := r.seedUpper(upper); err != nil {
		return fmt.Errorf("mount rootfs: %w", err)
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", escapeOverlay(r.Image), escapeOverlay(upper), escapeOverlay(work))
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", target, err)
	}
	return nil
}

// seedUpper writes what podctl puts in every writable layer before the pod
// starts: opaque private directories (an overlayfs "opaque" directory hides
// the lower layer's content), the pod's hostname files, and whiteouts for
// hidden paths.
func (r Rootfs) seedUpper(upper string) error {
	if r.Image == "/" {
		for _, d := range privateDirs {
			if err := makeOpaqueDir(filepath.Join(upper, d), 0o755); err != nil {
				return err
			}
		}
		// /tmp and /var/tmp are sticky and world-writable, /root private.
		for d, mode := range map[string]os.FileMode{"tmp": 0o1777 | os.ModeSticky, "var/tmp": 0o1777 | os.ModeSticky, "root": 0o700} {
			if err := os.Chmod(filepath.Join(upper, d), mode); err != nil {
				return err
			}
		}
		if err := whiteOut(upper, hostSecrets); err != nil {
			return err
		}
	}
	for _, h := range r.Hide {
		rel, err := filepath.Rel(r.Image, h)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") || r.inPrivateDir(rel) {
			continue
		}
		if err := makeOpaqueDir(filepath.Join(upper, rel), 0o700); err != nil {
			return err
		}
	}
	etc := filepath.Join(upper, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(etc, "hostname"), []byte(r.Hostname+"\n"), 0o644); err != nil {
		return err
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + r.Hostname + "\n"
	return os.WriteFile(filepath.Join(etc, "hosts"), []byte(hosts), 0o644)
}

// inPrivateDir reports whether rel (relative to the image root) lies in a
// directory that is already private to the pod.
func (r Rootfs) inPrivateDir(rel string) bool {
	if r.Image != "/" {
		return false
	}
	for _, d := range privateDirs {
		if rel == d || strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

// whiteOut hides from the pod the host files (relative to "/") that the
// globs match, with an overlayfs whiteout (a 0/0 character device) for
// each in the writable layer upper.
func whiteOut(upper string, globs []string) error {
	for _, g := range globs {
		matches, err := filepath.Glob(filepath.Join("/", g))
		if err != nil {
			return err
		}
		for _, m := range matches {
			w := filepath.Join(upper, m)
			if err := os.MkdirAll(filepath.Dir(w), 0o755); err != nil {
				return err
			}
			if err := unix.Mknod(w, unix.S_IFCHR, 0); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("hide %s: %w", m, err)
			}
		}
	}
	return nil
}

func makeOpaqueDir(dir string, mode os.FileMode) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	if err := unix.Setxattr(dir, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		return fmt.Errorf("make %s opaque: %w", dir, err)
	}
	return nil
}

// Unmount unmounts the pod's overlay. A rootfs that is not mounted is not
// an error. It is cleanup: it runs even when ctx is cancelled.
func (r Rootfs) Unmount(ctx context.Context) error {
	return unmountAll(filepath.Join(r.PodDir, RootfsDir))
}

// unmountAll unmounts whatever is mounted on target, however many times
// over (lazily, with what is mounted beneath, if it is busy). A target
// that is not a mount point, or not there, is not an error.
func unmountAll(target string) error {
	for i := 0; i < 8; i++ {
		mounted, err := isMountPoint(target)
		if err != nil || !mounted {
			return err
		}
		if err := unix.Unmount(target, 0); err != nil {
			if errors.Is(err, unix.EBUSY) {
				err = unix.Unmount(target, unix.MNT_DETACH)
			}
			if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("unmount %s: %w", target, err)
			}
		}
	}
	return nil
}

// isMountPoint reports whether path is the root of a mount, comparing its
// mount ID with its parent's (statx STATX_MNT_ID), which unlike comparing
// device numbers also sees an overlay mounted on a directory of the same
// filesystem as its lower layer.
func isMountPoint(p string) (bool, error) {
	var st, parent unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("stat %s: %w", p, err)
	}
	if err := unix.Statx(unix.AT_FDCWD, filepath.Dir(p), 0, unix.STATX_MNT_ID, &parent); err != nil {
		return false, fmt.Errorf("stat %s: %w", filepath.Dir(p), err)
	}
	return st.Mnt_id != parent.Mnt_id, nil
}

// escapeOverlay escapes the characters overlayfs' option parser treats
// specially in a layer path.
func escapeOverlay(p string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`, `,`, `\,`).Replace(p)
}

// DefaultPath is the PATH a pod's processes get unless the pod sets one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// LookPath finds the executable for argv0 inside the root filesystem
// mounted at rootfs, as the pod would: a name with a slash is taken as a
// path (relative to workdir), any other name is searched in pathEnv.
// Symbolic links are resolved inside rootfs, never on the host. It returns
// the in-pod path, or an error of kind CommandNotFound or
// CommandNotExecutable.
func LookPath(rootfs, argv0, pathEnv, workdir string) (string, error) {
	var candidates []string
	if strings.Contains(argv0, "/") {
		p := argv0
		if !path.IsAbs(p) {
			p = path.Join(workdir, p)
		}
		candidates = []string{path.Clean(p)}
	} else {
		for _, dir := range filepath.SplitList(pathEnv) {
			if dir == "" {
				dir = "."
			}
			if !path.IsAbs(dir) {
				dir = path.Join(workdir, dir)
			}
			candidates = append(candidates, path.Join(dir, argv0))
		}
	}
	found := ""
	for _, c := range candidates {
		hostPath, err := securejoin.SecureJoin(rootfs, c)
		if err != nil {
			continue
		}
		st, err := os.Stat(hostPath)
		if err != nil || st.IsDir() {
			continue
		}
		if st.Mode()&0o111 != 0 {
			return c, nil
		}
		if found == "" {
			found = c
		}
	}
	if found != "" {
		return "", errdefs.New(errdefs.CommandNotExecutable, "command %q: %s is not executable in the pod", argv0, found)
	}
	return "", errdefs.New(errdefs.CommandNotFound, "command %q not found in the pod", argv0)
}

// Remove unmounts the rootfs and deletes the writable layer and mount
// point. It refuses to delete anything while the overlay is still mounted,
// since deleting through the mount would reach into the image. It is
// cleanup: it runs even when ctx is cancelled.
func (r Rootfs) Remove(ctx context.Context) error {
	if err := r.Unmount(ctx); err != nil {
		return err
	}
	if err := unmountMaskedDir(filepath.Join(r.PodDir, MaskedMountDir)); err != nil {
		return fmt.Errorf("remove rootfs: %w", err)
	}
	target := filepath.Join(r.PodDir, RootfsDir)
	if mounted, err := isMountPoint(target); err != nil || mounted {
		return fmt.Errorf("remove rootfs %s: still mounted (%v)", target, err)
	}
	for _, d := range []string{RootfsDir, UpperDir, workDir} {
		if err := os.RemoveAll(filepath.Join(r.PodDir, d)); err != nil {
			return fmt.Errorf("remove rootfs: %w", err)
		}
	}
	return nil
}
