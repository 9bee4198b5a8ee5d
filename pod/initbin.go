package pod

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/internal/statedir"
	"github.com/podctl/podctl/virtns"
)

// initBinary returns the copy of the init binary (podinit, or podctl
// itself) that pods bind-mount as their init, making it on first use.
// Pods map their init's executable, and CRIU dumps such a mapping by
// reference to the file: were the pods to use the installed binary
// itself, replacing it (an upgrade, a rebuild) would leave running pods
// mapping a deleted file, which CRIU refuses to dump ("ghost file"). The
// copy, named after the binary's name, size and modification time, never
// changes while a pod uses it. Copies of binaries no longer installed are
// not removed yet.
//
// A pod restored on the host it was dumped on maps the copy its
// manifest names (man.Init), which may be an older binary's; any other
// pod gets, and records, the copy of the running binary.
func (m *Manager) initBinary(man *Manifest) (string, error) {
	return m.stableCopy(m.opts.InitBinary, &man.Init)
}

// podctlBinary returns the copy of the podctl binary that a pod housing a
// vessel bind-mounts to run the vessel's supervisor, for the same reason
// as initBinary's; its name is recorded in man.Podctl.
func (m *Manager) podctlBinary(man *Manifest) (string, error) {
	self, err := virtns.SelfBinary()
	if err != nil {
		return "", fmt.Errorf("find podctl binary: %w", err)
	}
	return m.stableCopy(self, &man.Podctl)
}

// stableCopy returns the copy of the binary src kept in ROOT/init, named
// after its name, size and modification time, making it on first use.
// *recorded names the copy a pod already maps: it is used if this host
// has it, and is set to the copy returned otherwise.
func (m *Manager) stableCopy(src string, recorded *string) (string, error) {
	dir := filepath.Join(m.opts.Root, "init")
	if *recorded != "" && filepath.Base(*recorded) == *recorded {
		if p := filepath.Join(dir, *recorded); fileExists(p) {
			return p, nil
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(src, &st); err != nil {
		return "", fmt.Errorf("init binary %s: %w", src, err)
	}
	*recorded = fmt.Sprintf("%s-%d-%d.%09d", filepath.Base(src), st.Size, st.Mtim.Sec, st.Mtim.Nsec)
	dst := filepath.Join(dir, *recorded)
	if fileExists(dst) {
		return dst, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("init binary: %w", err)
	}
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("init binary: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(dir, ".init-*")
	if err != nil {
		return "", fmt.Errorf("init binary: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, in)
	if err == nil {
		err = tmp.Chmod(0o755)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err == nil {
		err = statedir.SyncDir(dir)
	}
	if err != nil {
		return "", fmt.Errorf("init binary: %w", err)
	}
	return dst, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
