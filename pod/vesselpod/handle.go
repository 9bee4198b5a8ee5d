package vesselpod

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/human"
	"github.com/podctl/podctl/pod/handle"
	"github.com/podctl/podctl/wasm/snapshot"
)

// Handle is a vessel pod as a handle.Pod.
type Handle struct {
	store Store
	name  string
}

// Handle returns the vessel pod name of s as a handle.Pod.
func (s Store) Handle(name string) *Handle { return &Handle{store: s, name: name} }

// Store is the store the vessel pod is in.
func (h *Handle) Store() Store { return h.store }

// Name is the pod's name.
func (h *Handle) Name() string { return h.name }

// Kind is handle.Vessel.
func (h *Handle) Kind() handle.Kind { return handle.Vessel }

// Inspect is Store.Status.
func (h *Handle) Inspect(context.Context) (any, error) { return h.store.Status(h.name) }

// Logs is Store.Logs.
func (h *Handle) Logs(ctx context.Context, follow bool, w io.Writer) error {
	return h.store.Logs(ctx, h.name, follow, w)
}

// Stop is Store.Stop: a guest takes no signal, so there is no timeout to
// give it; it ends at its next poll point.
func (h *Handle) Stop(ctx context.Context, _ time.Duration) error { return h.store.Stop(ctx, h.name) }

// Remove is Store.Remove.
func (h *Handle) Remove(ctx context.Context, force bool) error {
	return h.store.Remove(ctx, h.name, force)
}

// Checkpoint is Store.Checkpoint: a vessel's checkpoint is always its
// portable snapshot, so Portable and Compression change nothing.
func (h *Handle) Checkpoint(ctx context.Context, o handle.CheckpointOptions) (handle.Report, error) {
	return h.store.Checkpoint(ctx, h.name, CheckpointOptions{Output: o.Output, LeaveRunning: o.LeaveRunning})
}

// Restore is Store.Restore of the checkpointed vessel pod. A vessel
// has no CPU features to check, so Force changes nothing.
func (h *Handle) Restore(ctx context.Context, o handle.RestoreOptions) (handle.Report, error) {
	m, d, err := h.store.Restore(ctx, h.name, RestoreOptions{Name: o.Name, MemoryLimit: o.MemoryLimit})
	if err != nil {
		return nil, err
	}
	return &RestoreReport{Name: m.Spec.Name, Kind: Kind, Total: d}, nil
}

// SnapshotFile is a portable snapshot file as a handle.Restorer: it is
// restored into Into, which may house it in a native pod, or else as a
// vessel pod of Store.
type SnapshotFile struct {
	Path  string
	Store Store
	Into  Receiver
}

// Receiver makes a vessel pod of a snapshot and resumes it, returning
// the pod's name: a Store (through Receive), or a host that houses
// vessels in native pods.
type Receiver interface {
	ReceiveVessel(ctx context.Context, snap *snapshot.Snapshot, o RestoreOptions) (string, error)
}

// Restore decodes the snapshot file within o's limits and resumes it.
func (f SnapshotFile) Restore(ctx context.Context, o handle.RestoreOptions) (handle.Report, error) {
	start := time.Now()
	ro := RestoreOptions{Name: o.Name, MemoryLimit: o.MemoryLimit}
	snap, encoded, err := ReadSnapshot(f.Path, ro)
	if err != nil {
		return nil, err
	}
	ro.Encoded = encoded
	var name string
	if f.Into != nil {
		name, err = f.Into.ReceiveVessel(ctx, snap, ro)
	} else {
		var m *Manifest
		if m, err = f.Store.Receive(ctx, snap, ro); err == nil {
			name = m.Spec.Name
		}
	}
	if err != nil {
		return nil, err
	}
	return &RestoreReport{Name: name, Kind: Kind, Total: time.Since(start)}, nil
}

// RestoreReport describes a finished restore of a vessel pod.
type RestoreReport struct {
	Name  string        `json:"name"`
	Kind  string        `json:"kind"`
	Total time.Duration `json:"totalNs"`
}

func (r *RestoreReport) String() string {
	return fmt.Sprintf("%s restored (vessel): total %s", r.Name, human.Millis(r.Total))
}

func (r *CheckpointResult) String() string {
	t := r.Timings
	return fmt.Sprintf("%s (%s): safepoint %s, capture %s, write %s, total %s",
		r.Snapshot, human.Bytes(r.Bytes), human.Millis(t.Safepoint), human.Millis(t.Capture), human.Millis(t.Write), human.Millis(r.Total))
}

// OpenSource returns what `podctl restore` restores from source when
// only vessels can be: a snapshot file, or a checkpointed vessel pod of
// s. Anything else is refused as Unsupported.
func (s Store) OpenSource(source string) (handle.Restorer, error) {
	if _, err := os.Stat(source); err == nil {
		if IsSnapshotFile(source) {
			return SnapshotFile{Path: source, Store: s}, nil
		}
	} else if Exists(s.Root, source) {
		return s.Handle(source), nil
	}
	return nil, errdefs.New(errdefs.Unsupported, "%s is not a vessel snapshot or pod", source)
}

// Logs writes the guest's standard output of the vessel pod name, then
// its standard error; with follow, it keeps writing both until the guest
// is no longer running.
func (s Store) Logs(ctx context.Context, name string, follow bool, w io.Writer) error {
	stdout, stderr, err := s.LogPaths(name)
	if err != nil {
		return err
	}
	var offsets [2]int64
	for {
		for i, p := range []string{stdout, stderr} {
			n, err := copyFrom(w, p, offsets[i])
			if err != nil {
				return err
			}
			offsets[i] += n
		}
		if !follow {
			return nil
		}
		st, err := s.Status(name)
		if err != nil || st.Status != "running" {
			follow = false // one last read
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// copyFrom copies path from offset to w.
func copyFrom(w io.Writer, path string, offset int64) (int64, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, err
	}
	return io.Copy(w, f)
}
