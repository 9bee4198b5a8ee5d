package virtns

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestIsPodDevice(t *testing.T) {
	for _, tc := range []struct {
		path string
		rdev uint64
		want bool
	}{
		{"/dev/null", unix.Mkdev(1, 3), true},
		{"/dev/urandom", unix.Mkdev(1, 9), true},
		{"/dev/tty", unix.Mkdev(5, 0), true},
		{"/dev/null", unix.Mkdev(1, 5), false}, // zero's numbers under null's name
		{"/tmp/null", unix.Mkdev(1, 3), false},
		{"/dev/sda", unix.Mkdev(8, 0), false},
		{"/dev/whiteout", 0, false},
	} {
		if got := IsPodDevice(tc.path, tc.rdev); got != tc.want {
			t.Errorf("IsPodDevice(%s, %d:%d) = %v, want %v", tc.path, unix.Major(tc.rdev), unix.Minor(tc.rdev), got, tc.want)
		}
	}
}

func TestPrepareDev(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (make test runs as root): makes device nodes")
	}
	root := t.TempDir()
	// What an image may hold at those paths: a regular file where a
	// device goes, and /dev/shm with the wrong mode.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "dev/shm"), 0o755))
	must(os.WriteFile(filepath.Join(root, "dev/null"), []byte("not a device"), 0o644))
	for range 2 { // idempotent
		must(prepareDev(root))
		for _, dev := range []struct {
			name string
			rdev uint64
		}{{"null", unix.Mkdev(1, 3)}, {"zero", unix.Mkdev(1, 5)}, {"full", unix.Mkdev(1, 7)}, {"random", unix.Mkdev(1, 8)}, {"urandom", unix.Mkdev(1, 9)}, {"tty", unix.Mkdev(5, 0)}} {
			var st unix.Stat_t
			must(unix.Lstat(filepath.Join(root, "dev", dev.name), &st))
			if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != dev.rdev || st.Mode&0o777 != 0o666 {
				t.Errorf("/dev/%s: mode %o rdev %d:%d, want a character device %d:%d, mode 666",
					dev.name, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), unix.Major(dev.rdev), unix.Minor(dev.rdev))
			}
		}
		fi, err := os.Stat(filepath.Join(root, "dev/shm"))
		must(err)
		if fi.Mode() != shmMode {
			t.Errorf("/dev/shm: mode %v, want %v", fi.Mode(), shmMode)
		}
	}
}

// An image whose /dev is a symbolic link to a host path gets its devices
// inside its own root, never on the host.
func TestPrepareDevSymlinkStaysInside(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (make test runs as root): makes device nodes")
	}
	root, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "dev")); err != nil {
		t.Fatal(err)
	}
	if err := prepareDev(root); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("prepareDev wrote %d entries outside the root, through the image's /dev link", len(ents))
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, outside, "null"), &st); err != nil || st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("/dev/null resolved inside the root: %v", err)
	}
}
