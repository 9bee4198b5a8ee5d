package vesselpod

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/podctl/podctl/wasm/prepare"
)

// TestRecoverStopsWhenCancelled checks that Recover removes a pod
// directory a dead podctl left without a manifest, but not once its
// context is done: it then stops before the next pod, and the next
// Recover finishes the job.
func TestRecoverStopsWhenCancelled(t *testing.T) {
	s := Store{Root: t.TempDir()}
	dir := s.podDir("abandoned")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Recover(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Recover with a cancelled context = %v, want Canceled", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("a cancelled Recover removed %s: %v", dir, err)
	}
	if err := s.Recover(t.Context()); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Recover left %s: %v", dir, err)
	}
}

// TestPrivateModes checks that a vessel pod's directories and files are
// its owner's alone: they hold the guest's memory, files and output.
func TestPrivateModes(t *testing.T) {
	s := Store{Root: t.TempDir()}
	dir, unlock, err := s.makePodDir("v")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := s.save(&Manifest{Spec: Spec{Name: "v"}}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		s.dir(): 0o700, dir: 0o700, filepath.Join(dir, dirsDir): 0o700, filepath.Join(dir, manifestFile): 0o600,
	} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: mode %04o, want %04o", path, got, want)
		}
	}
}

// TestInstallFailureCleansUp checks that an Install that fails once the
// pod's directory is made (a preopened directory holding what a vessel
// cannot take) leaves nothing of the pod and its lock free, rather than
// calling the nil unlock it returns.
func TestInstallFailureCleansUp(t *testing.T) {
	s := Store{Root: t.TempDir()}
	host := t.TempDir()
	if err := os.Symlink("/dev/null", filepath.Join(host, "ok")); err != nil {
		t.Fatal(err)
	}
	if err := syscallMkfifo(filepath.Join(host, "fifo")); err != nil {
		t.Fatal(err)
	}
	prepared := &prepare.Prepared{Bytes: []byte("\x00asm\x01\x00\x00\x00m")}
	_, _, err := s.Install(CreateOptions{Name: "v", Dirs: []DirMap{{Host: host, Guest: "/data"}}}, prepared)
	if err == nil {
		t.Fatal("Install copied a FIFO")
	}
	if _, err := os.Stat(s.podDir("v")); !os.IsNotExist(err) {
		t.Fatalf("a failed Install left the pod: %v", err)
	}
}
