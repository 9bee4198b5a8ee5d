package pod

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/podctl/podctl/internal/errdefs"
)

// TestImagePolicy checks that a dock accepts only the host image and
// directories under its image roots, however a peer's manifest spells
// the path.
func TestImagePolicy(t *testing.T) {
	dir := t.TempDir()
	root, elsewhere := filepath.Join(dir, "images"), filepath.Join(dir, "etc")
	for _, d := range []string{filepath.Join(root, "debian"), elsewhere} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(elsewhere, filepath.Join(root, "sneaky")); err != nil {
		t.Fatal(err)
	}
	p := &ImagePolicy{Roots: []string{root}}
	for image, ok := range map[string]bool{
		ImageHost:                           true,
		filepath.Join(root, "debian"):       true,
		filepath.Join(root, "debian", ".."): false, // the root itself
		root:                                false,
		elsewhere:                           false,
		filepath.Join(root, "..", "etc"):    false,
		filepath.Join(root, "sneaky"):       false, // a link out of the root
		filepath.Join(root, "missing"):      false,
		"/":                                 false,
	} {
		err := p.Check(image)
		if ok != (err == nil) {
			t.Errorf("Check(%s) = %v, want allowed %v", image, err, ok)
		}
		if err != nil && errdefs.KindOf(err) != errdefs.InvalidImage {
			t.Errorf("Check(%s): %v is not InvalidImage", image, err)
		}
	}
	if err := (&ImagePolicy{}).Check(filepath.Join(root, "debian")); err == nil {
		t.Error("a dock with no image roots accepted an image directory")
	}
}
