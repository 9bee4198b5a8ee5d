package vesselpod

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/pod/handle"
	"github.com/podctl/podctl/wasm/snapshot"
)

// TestOpenSource checks what a vessel-only podctl restores: a file that
// starts as a snapshot does, a recorded vessel pod, and nothing else.
func TestOpenSource(t *testing.T) {
	s := Store{Root: t.TempDir()}
	dir := t.TempDir()
	snap := filepath.Join(dir, "v.snap")
	archive := filepath.Join(dir, "p.tar.zst")
	os.WriteFile(snap, []byte(snapshot.Magic+"rest"), 0o600)
	os.WriteFile(archive, []byte("\x28\xb5\x2f\xfdzstd"), 0o600)
	os.MkdirAll(filepath.Join(s.Root, "vessels", "v1"), 0o700)
	os.WriteFile(filepath.Join(s.Root, "vessels", "v1", manifestFile), []byte("{}"), 0o600)

	if r, err := s.OpenSource(snap); err != nil || r.(SnapshotFile).Path != snap {
		t.Fatalf("snapshot file: %#v, %v", r, err)
	}
	if r, err := s.OpenSource("v1"); err != nil || r.(*Handle).Name() != "v1" || r.(*Handle).Kind() != handle.Vessel {
		t.Fatalf("vessel pod: %#v, %v", r, err)
	}
	for _, source := range []string{archive, "nobody"} {
		if _, err := s.OpenSource(source); errdefs.KindOf(err) != errdefs.Unsupported {
			t.Errorf("%s: got %v, want Unsupported", source, err)
		}
	}
}
