package vesselpod

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/podctl/podctl/pod/handle"
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
