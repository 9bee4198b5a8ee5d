package pod

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/names"
	"github.com/podctl/podctl/internal/statedir"
)

// Volume is a named volume: a directory kept under the state root
// (ROOT/volumes/NAME/data) that pods mount. It outlives the pods that use
// it: `rm` keeps it unless asked (`rm --volumes`), `volume rm` removes it
// once no pod uses it.
type Volume struct {
	Name string `json:"name"`
	// ID tells this volume from another of the same name (on another
	// host, or made after this one was removed).
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"createdAt"`
	// Mountpoint is the host directory that holds the volume's files.
	Mountpoint string `json:"mountpoint"`
	// UsedBy names the pods that mount it.
	UsedBy []string `json:"usedBy"`
}

// volumeRecord is what ROOT/volumes/NAME/volume.json keeps.
type volumeRecord struct {
	Name      string    `json:"name"`
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"createdAt"`
}

func (s Store) volumesDir() string            { return filepath.Join(s.Root, "volumes") }
func (s Store) volumeDir(name string) string  { return filepath.Join(s.volumesDir(), name) }
func (s Store) volumeData(name string) string { return filepath.Join(s.volumeDir(name), "data") }

// createVolumeLocked makes the named volume unless it exists, and
// reports whether it made it. The caller holds the state lock.
func (m *Manager) createVolumeLocked(name string) (bool, error) {
	if _, err := os.Stat(m.store.volumeDir(name)); err == nil {
		return false, nil
	}
	return true, m.installVolumeLocked(name, newID()+newID(), "")
}

// installVolumeLocked makes the volume name with id, whose files are
// the directory data (moved there), or none if data is "". It is made
// under a temporary name and renamed into place, so a volume directory
// is always whole. The caller holds the state lock.
func (m *Manager) installVolumeLocked(name, id, data string) error {
	if err := os.MkdirAll(m.store.volumesDir(), 0o700); err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	tmp, err := os.MkdirTemp(m.store.volumesDir(), ".new-")
	if err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	defer os.RemoveAll(tmp) // after the rename, nothing is there
	if data == "" {
		err = os.Mkdir(filepath.Join(tmp, "data"), 0o755)
	} else {
		err = os.Rename(data, filepath.Join(tmp, "data"))
	}
	if err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	rec := volumeRecord{Name: name, ID: id, CreatedAt: time.Now().UTC()}
	if err := statedir.WriteJSON(filepath.Join(tmp, "volume.json"), rec, 0o600); err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	if err := os.Rename(tmp, m.store.volumeDir(name)); err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	return nil
}

// placeVolumes puts the named volumes a restored pod's archive carried
// (vols, extracted in dirs) in place for man, before it is restored:
//   - a volume this host does not have is made from the archive's files
//     and recorded in man.DisposableVolumes, so that a restore that fails
//     takes it away again;
//   - a volume of the same ID (an earlier state of the same volume:
//     left by a checkpoint here, say) that no other pod mounts gets the
//     archive's files instead of its own, which are deleted;
//   - one of the same ID that another pod mounts keeps its files, since
//     that pod may have written to it since the checkpoint: the two pods
//     share it, as they did;
//   - a volume of the same name and another ID is another volume: the
//     restore is refused (errdefs.Conflict), and it keeps its files.
func (m *Manager) placeVolumes(ctx context.Context, man *Manifest, vols []checkpoint.Volume, dirs []string) error {
	if want := man.Spec.NamedVolumes(); len(want) != len(vols) || len(vols) != len(dirs) {
		return errdefs.New(errdefs.InvalidImage, "archive: the pod mounts the volumes %v, the archive carries %d", want, len(vols))
	}
	return m.volumesLocked(ctx, func(users map[string][]string) error {
		for i, v := range vols {
			if !slices.Contains(man.Spec.NamedVolumes(), v.Name) {
				return errdefs.New(errdefs.InvalidImage, "archive: it carries the volume %s, which the pod does not mount", v.Name)
			}
			have, err := m.loadVolume(v.Name, users)
			switch {
			case errdefs.Is(err, errdefs.NotFound):
				if err := m.installVolumeLocked(v.Name, v.ID, dirs[i]); err != nil {
					return err
				}
				man.DisposableVolumes = append(man.DisposableVolumes, v.Name)
				if err := m.store.save(man); err != nil {
					return err
				}
			case err != nil:
				return err
			case have.ID != v.ID:
				return errdefs.New(errdefs.Conflict, "this host has another volume named %s (remove it, or restore the pod elsewhere)", v.Name)
			case slices.ContainsFunc(have.UsedBy, func(p string) bool { return p != man.Spec.Name }):
				// Shared with a pod here: it keeps its files.
			default:
				if err := m.replaceVolumeDataLocked(v.Name, dirs[i]); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// replaceVolumeDataLocked gives the volume name the files of the
// directory data (moved there) instead of its own. The caller holds the
// state lock.
func (m *Manager) replaceVolumeDataLocked(name, data string) error {
	old, err := os.MkdirTemp(m.store.volumesDir(), ".rm-")
	if err != nil {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	if err := os.Rename(m.store.volumeData(name), filepath.Join(old, "data")); err != nil {
		os.Remove(old)
		return fmt.Errorf("volume %s: %w", name, err)
	}
	if err := os.Rename(data, m.store.volumeData(name)); err != nil {
		// Put its own files back.
		return errors.Join(fmt.Errorf("volume %s: %w", name, err), os.Rename(filepath.Join(old, "data"), m.store.volumeData(name)))
	}
	return os.RemoveAll(old)
}

// removeVolumeLocked deletes the named volume and its files: renamed out
// of the way first, so that it is gone at once even if the deletion of
// its files is interrupted (removeStaleTemp finishes that). The caller
// holds the state lock.
func (m *Manager) removeVolumeLocked(name string) error {
	gone, err := os.MkdirTemp(m.store.volumesDir(), ".rm-")
	if err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	target := filepath.Join(gone, name)
	if err := os.Rename(m.store.volumeDir(name), target); err != nil {
		os.Remove(gone)
		if errors.Is(err, os.ErrNotExist) {
			return errdefs.New(errdefs.NotFound, "no such volume: %s", name)
		}
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// removeStaleVolumeTemp deletes what an interrupted createVolumeLocked or
// removeVolumeLocked left. The caller holds the state lock.
func (m *Manager) removeStaleVolumeTemp() error {
	stale, _ := filepath.Glob(filepath.Join(m.store.volumesDir(), ".*"))
	var errs []error
	for _, p := range stale {
		errs = append(errs, os.RemoveAll(p))
	}
	return errors.Join(errs...)
}

// volumeUsers maps each named volume to the pods that mount it, sorted.
func (m *Manager) volumeUsers() (map[string][]string, error) {
	pods, err := m.store.names()
	if err != nil {
		return nil, err
	}
	users := map[string][]string{}
	for _, p := range pods {
		man, err := m.store.Load(p)
		if errdefs.Is(err, errdefs.NotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, v := range man.Spec.NamedVolumes() {
			users[v] = append(users[v], p)
		}
	}
	return users, nil
}

// volumesLocked calls f with the state lock held and the map of volume
// users (volumeUsers).
func (m *Manager) volumesLocked(ctx context.Context, f func(users map[string][]string) error) error {
	lk, err := m.store.lock(ctx)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	users, err := m.volumeUsers()
	if err != nil {
		return err
	}
	return f(users)
}

// loadVolume reads the named volume's record.
func (m *Manager) loadVolume(name string, users map[string][]string) (*Volume, error) {
	if err := names.Validate(name); err != nil {
		return nil, err
	}
	var rec volumeRecord
	err := statedir.ReadJSON(filepath.Join(m.store.volumeDir(name), "volume.json"), &rec)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.New(errdefs.NotFound, "no such volume: %s", name)
	}
	if err != nil {
		return nil, fmt.Errorf("load volume %s: %w", name, err)
	}
	return &Volume{Name: name, ID: rec.ID, CreatedAt: rec.CreatedAt, Mountpoint: m.store.volumeData(name), UsedBy: nonNil(users[name])}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Volumes lists the named volumes, sorted by name.
func (m *Manager) Volumes(ctx context.Context) ([]*Volume, error) {
	var vs []*Volume
	err := m.volumesLocked(ctx, func(users map[string][]string) error {
		entries, err := os.ReadDir(m.store.volumesDir())
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list volumes: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() || names.Validate(e.Name()) != nil {
				continue
			}
			v, err := m.loadVolume(e.Name(), users)
			if err != nil {
				return err
			}
			vs = append(vs, v)
		}
		return nil
	})
	sort.Slice(vs, func(i, j int) bool { return vs[i].Name < vs[j].Name })
	return vs, err
}

// InspectVolume returns the named volume.
func (m *Manager) InspectVolume(ctx context.Context, name string) (*Volume, error) {
	var v *Volume
	err := m.volumesLocked(ctx, func(users map[string][]string) (err error) {
		v, err = m.loadVolume(name, users)
		return err
	})
	return v, err
}

// RemoveVolume deletes the named volume and its files. A volume a pod
// mounts is refused (errdefs.Conflict), running or not: remove the pod
// first, or with `rm --volumes`.
func (m *Manager) RemoveVolume(ctx context.Context, name string) error {
	return m.volumesLocked(ctx, func(users map[string][]string) error {
		if _, err := m.loadVolume(name, users); err != nil {
			return err
		}
		if len(users[name]) > 0 {
			return errdefs.New(errdefs.Conflict, "volume %s is used by pod %s: remove the pod first", name, users[name][0])
		}
		return m.removeVolumeLocked(name)
	})
}

// removeUnusedVolumesLocked deletes the volumes of vols that no pod but
// except mounts, and that exist. The caller holds the state lock.
func (m *Manager) removeUnusedVolumesLocked(vols []string, except string) error {
	if len(vols) == 0 {
		return nil
	}
	users, err := m.volumeUsers()
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range vols {
		if slices.ContainsFunc(users[v], func(p string) bool { return p != except }) {
			continue
		}
		if err := m.removeVolumeLocked(v); err != nil && !errdefs.Is(err, errdefs.NotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
