package virtns

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMountMaskedDir checks the source a restore binds over a pod's
// masked directories: empty, read-only (even for root), and gone once
// unmounted, while the empty directory its clones have as their root
// stays.
func TestMountMaskedDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("mounts need root (make test runs as root)")
	}
	state, pod1, pod2 := t.TempDir(), t.TempDir(), t.TempDir()
	dir, err := mountMaskedDir(state, filepath.Join(pod1, MaskedMountDir))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Errorf("masked source holds %v (%v), want nothing", entries, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o600); !errors.Is(err, unix.EROFS) {
		t.Errorf("root writing into the masked source: %v, want EROFS", err)
	}
	// A restore after a crash that left the mount mounts it once.
	if dir, err = mountMaskedDir(state, dir); err != nil {
		t.Fatal(err)
	}
	// Two restores at once each have their own mount.
	dir2, err := mountMaskedDir(state, filepath.Join(pod2, MaskedMountDir))
	if err != nil {
		t.Fatal(err)
	}
	if err := unmountMaskedDir(dir2); err != nil {
		t.Fatal(err)
	}
	// Removing the pod's root filesystem removes what a crash left.
	if err := (Rootfs{PodDir: pod1}).Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, dir2} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after unmount: %v, want it gone", d, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(state, "masked")); err != nil || !fi.IsDir() {
		t.Errorf("the empty directory went with the mount: %v", err)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), state) {
		t.Errorf("a mount of %s is left", state)
	}
}
