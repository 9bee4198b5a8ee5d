package pod

import (
	"context"
	"github.com/podctl/podctl/internal/errdefs"
	"time"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/internal/statedir"
	"github.com/podctl/podctl/virtns"
)

// Outgoing is a pod on its way to another host. The sequence is Dump (the
// pod stops running here), writing the archive with WriteArchive, then
// Commit once the destination runs it, or Abort to resume it here; Close
// releases it. Until Commit the source pod is intact: a failure anywhere
// leaves it running.
type Outgoing struct {
	m      *Manager
	man    *Manifest
	lock   *statedir.Lock
	frozen *checkpoint.Frozen
	failed bool // Dump failed (and resumed the pod)
	done   bool
}

// BeginMigration takes a running pod's lock for a migration. A pod
// another command is operating on (a migration, say) is refused at once
// as errdefs.Busy: a second migration of a pod never waits for the
// first, whose end takes the pod away.
func (m *Manager) BeginMigration(ctx context.Context, name string) (*Outgoing, error) {
	if _, err := m.store.Load(name); err != nil {
		return nil, err
	}
	pl, err := m.store.tryLockPod(name)
	if err != nil {
		return nil, errdefs.New(errdefs.Busy, "pod %s is busy: another podctl command is operating on it", name)
	}
	man, err := m.store.Load(name)
	if err != nil {
		pl.Unlock()
		return nil, err
	}
	if err := m.requireRunning(ctx, man); err != nil {
		pl.Unlock()
		return nil, err
	}
	if err := m.migratableVolumes(man.Spec); err != nil {
		pl.Unlock()
		return nil, err
	}
	return &Outgoing{m: m, man: man, lock: pl, frozen: checkpoint.Begin(ctx, m.dumpTarget(man))}, nil
}

// Manifest is the migrating pod's manifest.
func (out *Outgoing) Manifest() *Manifest { return out.man }

// ArchiveManifest describes the pod for its migration's archive, whose
// memory pages travel on the page tunnel (lazily, with lazy).
func (out *Outgoing) ArchiveManifest(lazy bool) (*checkpoint.Manifest, error) {
	pages := checkpoint.PagesStreamed
	if lazy {
		pages = checkpoint.PagesLazy
	}
	return out.m.archiveManifest(out.man, out.frozen.CRIUVersion(), pages)
}

// EstimatedBytes is the pod's memory use: roughly what a migration sends.
func (out *Outgoing) EstimatedBytes() int64 {
	return virtns.MemoryUsage(out.man.CgroupPath)
}

// TempDir makes a scratch directory for the migration's images.
func (out *Outgoing) TempDir() (string, error) { return out.m.tempDir("migrate-" + out.man.ID) }

// Dump freezes the pod, takes it off the network and dumps it (see
// virtns.CheckpointOptions for sending pages to a page server or serving
// them lazily). The pod stays frozen; on error it has been resumed.
//
// Dump may run in another goroutine; FrozenAt and LockedAt may be read
// once o.Ready has been called or Dump has returned.
func (out *Outgoing) Dump(ctx context.Context, o virtns.CheckpointOptions) error {
	if err := out.frozen.Dump(ctx, o); err != nil {
		out.failed = true
		return err
	}
	return nil
}

// FrozenAt is when the pod stopped running here.
func (out *Outgoing) FrozenAt() time.Time { return out.frozen.FrozenAt }

// LockedAt is when the pod was frozen and off the network, ready for CRIU.
func (out *Outgoing) LockedAt() time.Time { return out.frozen.LockedAt }

// WriteArchive adds the dumped images in imagesDir, the pod's writable
// layer and its named volumes to w, whose manifest is ArchiveManifest's.
// The pod is frozen, so its files match the images.
func (out *Outgoing) WriteArchive(w *checkpoint.Writer, imagesDir string) error {
	if err := w.AddCRIUImages(imagesDir); err != nil {
		return err
	}
	if err := w.AddUpperLayer(out.m.upperPath(out.man, "/")); err != nil {
		return err
	}
	dirs := out.m.volumeDirs(out.man)
	for i, name := range out.man.Spec.NamedVolumes() {
		if err := w.AddVolume(name, dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

// Commit removes the pod from this host for good: the destination runs it.
func (out *Outgoing) Commit(ctx context.Context) error {
	out.done = true
	return out.m.teardown(ctx, out.man)
}

// Abort resumes the pod here (if it was dumped).
func (out *Outgoing) Abort() error {
	if out.done || out.failed || out.frozen.FrozenAt.IsZero() {
		out.done = true
		return nil
	}
	out.done = true
	return out.frozen.Resume()
}

// Close aborts an unfinished migration and releases the pod.
func (out *Outgoing) Close() error {
	err := out.Abort()
	out.lock.Unlock()
	return err
}

// migratableVolumes refuses a pod whose volumes a migration would not
// carry: a host directory is the source host's, and no --volume-policy
// says yet how a destination would provide it; a named volume another
// pod here mounts too would be split in two.
func (m *Manager) migratableVolumes(spec Spec) error {
	if hv := spec.HostVolumes(); len(hv) > 0 {
		return errdefs.New(errdefs.Unsupported, "pod %s mounts the host directory %s at %s, which a migration does not carry", spec.Name, hv[0].Source, hv[0].Destination)
	}
	if len(spec.NamedVolumes()) == 0 {
		return nil
	}
	users, err := m.volumeUsers()
	if err != nil {
		return err
	}
	for _, v := range spec.NamedVolumes() {
		for _, p := range users[v] {
			if p != spec.Name {
				return errdefs.New(errdefs.Conflict, "pod %s shares the volume %s with pod %s: a migration would split it in two", spec.Name, v, p)
			}
		}
	}
	return nil
}
