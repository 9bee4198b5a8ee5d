package vesselpod

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
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
