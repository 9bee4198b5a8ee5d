package checkpoint

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/podctl/podctl/internal/errdefs"
)

// TestFile checks that an archive file appears at its path only whole:
// a failed or interrupted write leaves what was there, and no temporary
// file remains either way.
func TestFile(t *testing.T) {
	dir := t.TempDir()
	images, upper := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(images, "core-1.img"), []byte("image"), 0o600)
	path := filepath.Join(dir, "a.tar")
	os.WriteFile(path, []byte("the previous archive"), 0o600)

	f, err := CreateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(context.Background(), CompressionNone, testManifest(), images, upper, nil, func() error { return errors.New("resume failed") })
	f.Close()
	if err == nil {
		t.Fatal("a failing layerRead did not stop the write")
	}
	if b, _ := os.ReadFile(path); string(b) != "the previous archive" {
		t.Fatalf("a failed write replaced the file: %q", b)
	}

	// Interrupted once the layer is read: the last moment before the
	// file is made durable and put in place.
	f, err = CreateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err = f.Write(ctx, CompressionNone, testManifest(), images, upper, nil, func() error { cancel(); return nil })
	f.Close()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted write: %v, want context.Canceled", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "the previous archive" {
		t.Fatalf("an interrupted write replaced the file: %q", b)
	}

	f, err = CreateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	called := false
	n, err := f.Write(context.Background(), CompressionNone, testManifest(), images, upper, nil, func() error { called = true; return nil })
	f.Close()
	if err != nil || !called {
		t.Fatalf("Write: %v (layerRead called: %v)", err, called)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != n {
		t.Fatalf("archive at %s: %v, size %d; Write said %d", path, err, st.Size(), n)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left in the directory: %v", ents)
	}

	if _, err := CreateFile(filepath.Join(dir, "missing", "a.tar")); errdefs.KindOf(err) != errdefs.InvalidArgument {
		t.Fatalf("unwritable directory: %v, want InvalidArgument", err)
	}
}
