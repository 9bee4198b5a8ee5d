package pod

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/internal/errdefs"
)

// savePod records a pod named name mounting the named volumes vols, as
// far as the volume bookkeeping looks (its manifest).
func savePod(t *testing.T, m *Manager, name string, vols ...string) *Manifest {
	t.Helper()
	man := &Manifest{Version: ManifestVersion, ID: newID(), State: StateCreated, Spec: Spec{Name: name}}
	for _, v := range vols {
		man.Spec.Volumes = append(man.Spec.Volumes, VolumeMount{Name: v, Destination: "/" + v})
	}
	if err := os.MkdirAll(m.store.podDir(name), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := m.store.save(man); err != nil {
		t.Fatal(err)
	}
	return man
}

// extracted is a directory holding one file, as an archive's volume is
// extracted.
func extracted(t *testing.T, body string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vol")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func volumeFile(t *testing.T, m *Manager, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m.store.volumeData(name), "f"))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}

// TestPlaceVolumes checks what a restore does with each volume its
// archive carries, by the state of the host's volume of that name.
func TestPlaceVolumes(t *testing.T) {
	ctx := context.Background()
	m, err := NewManager(Options{Root: t.TempDir(), InitBinary: "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	lock := func() func() {
		lk, err := m.store.lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return lk.Unlock
	}
	unlock := lock()
	for _, v := range []string{"same", "shared", "other"} {
		if _, err := m.createVolumeLocked(v); err != nil {
			t.Fatal(err)
		}
	}
	unlock()
	id := func(name string) string {
		v, err := m.loadVolume(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		return v.ID
	}
	savePod(t, m, "neighbour", "shared")

	man := savePod(t, m, "restored", "fresh", "same", "shared")
	vols := []checkpoint.Volume{{Name: "fresh", ID: newID() + newID()}, {Name: "same", ID: id("same")}, {Name: "shared", ID: id("shared")}}
	dirs := []string{extracted(t, "fresh"), extracted(t, "same"), extracted(t, "shared")}
	if err := m.placeVolumes(ctx, man, vols, dirs); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"fresh": "fresh", "same": "same"} {
		if got := volumeFile(t, m, name); got != want {
			t.Errorf("volume %s holds %q, want the archive's %q", name, got, want)
		}
	}
	if got := volumeFile(t, m, "shared"); got == "shared" {
		t.Error("a volume another pod mounts took the archive's files")
	}
	if id("fresh") != vols[0].ID {
		t.Errorf("the new volume's id is %s, want the archive's %s", id("fresh"), vols[0].ID)
	}
	if !slices.Equal(man.DisposableVolumes, []string{"fresh"}) {
		t.Errorf("DisposableVolumes = %v, want the volume the restore made", man.DisposableVolumes)
	}
	// Another volume of the same name is refused and keeps its files.
	other := savePod(t, m, "intruder", "other")
	err = m.placeVolumes(ctx, other, []checkpoint.Volume{{Name: "other", ID: newID() + newID()}}, []string{extracted(t, "theirs")})
	if !errdefs.Is(err, errdefs.Conflict) {
		t.Errorf("restore onto another volume of the same name: %v, want a conflict", err)
	}
	if got := volumeFile(t, m, "other"); got == "theirs" {
		t.Error("another volume of the same name was overwritten")
	}
	// An archive whose volumes are not the pod's is refused.
	err = m.placeVolumes(ctx, savePod(t, m, "liar", "a"), []checkpoint.Volume{{Name: "b", ID: newID() + newID()}}, []string{extracted(t, "b")})
	if !errdefs.Is(err, errdefs.InvalidImage) {
		t.Errorf("an archive carrying another volume: %v, want an invalid image", err)
	}
	// The restored pod goes, taking the volume it made and no other.
	unlock = lock()
	if err := m.forgetLocked(ctx, man); err != nil {
		t.Fatal(err)
	}
	unlock()
	if _, err := os.Stat(m.store.volumeDir("fresh")); !os.IsNotExist(err) {
		t.Errorf("the volume the failed restore made is still there: %v", err)
	}
	for _, v := range []string{"same", "shared", "other"} {
		if _, err := os.Stat(m.store.volumeDir(v)); err != nil {
			t.Errorf("volume %s went with the pod: %v", v, err)
		}
	}
}
