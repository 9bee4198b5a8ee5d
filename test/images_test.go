package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podctl/podctl/test/harness"
)

// TestDockServesOnlyItsImages migrates a pod of an image directory to a
// dock: a dock not told to serve that directory refuses it (a peer's
// manifest must not name any directory of the dock's host as a root
// filesystem) and the pod runs on at the source; a dock given the
// directory's parent with --images takes it.
func TestDockServesOnlyItsImages(t *testing.T) {
	harness.RequireRoot(t)
	lan := harness.NewLAN(t, podctlBin, 2)
	pki := lan.PKI(t)
	a, b := lan.Hosts[0], lan.Hosts[1]
	images := t.TempDir()
	img := filepath.Join(images, "hello")
	for _, d := range []string{"etc", "bin", "tmp"} {
		os.MkdirAll(filepath.Join(img, d), 0o755)
	}
	if err := harness.BuildStatic(filepath.Join(img, "bin", "hello"), "./test/workloads/hello"); err != nil {
		t.Fatal(err)
	}
	a.MustPodctl("create", "--name", "img", "--image", img, "--", "/bin/hello", "from", "image")
	waitLog(t, a, "img", "hello from image")

	dock := lan.StartDock(t, 1, pki)
	r := a.Podctl("migrate", "img", "--to", lan.DockAddr(1), "--pki", pki)
	if r.Code != exitInvalidImage || lines(r.Stderr) != 1 || !strings.Contains(r.Stderr, "not served here") {
		t.Fatalf("migrate to a dock that serves no image directory: exit %d, stderr %q; want %d, one line saying so", r.Code, r.Stderr, exitInvalidImage)
	}
	if p := a.Inspect("img"); p.Status != "running" {
		t.Fatalf("source pod is %s after the refusal", p.Status)
	}
	if got := podNames(t, b); got != "" {
		t.Fatalf("the refusing dock keeps pods: %s", got)
	}
	dock.Stop()

	lan.StartDockWith(t, 1, pki, []string{"--images", images})
	a.MustPodctl("migrate", "img", "--to", lan.DockAddr(1), "--pki", pki)
	if p := b.Inspect("img"); p.Status != "running" {
		t.Fatalf("migrated pod is %s", p.Status)
	}
}
