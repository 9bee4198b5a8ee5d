package migrate

import (
	"context"
	"io"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/pod/handle"
	"github.com/podctl/podctl/pod/vesselpod"
)

// A dock's sources reach the pods they migrated there by the session
// that brought each one (dock.SessionPods): Destination serves them.

// sessionPod returns the pod that session brought to this dock, or an
// errdefs.NotFound.
func (d *Destination) sessionPod(session string) (handle.Pod, error) {
	p, err := d.findSession(session)
	if err == nil && p == nil {
		err = errdefs.New(errdefs.NotFound, "no pod here came in session %s", session)
	}
	return p, err
}

// InspectSession returns what `podctl inspect` shows of the pod that
// session brought here.
func (d *Destination) InspectSession(ctx context.Context, session string) (any, error) {
	p, err := d.sessionPod(session)
	if err != nil {
		return nil, err
	}
	return p.Inspect(ctx)
}

// LogsSession writes the output of the pod that session brought here.
func (d *Destination) LogsSession(ctx context.Context, session string, w io.Writer) error {
	p, err := d.sessionPod(session)
	if err != nil {
		return err
	}
	return p.Logs(ctx, false, w)
}

// RemoveSession removes the pod that session brought here, ending it
// first if it runs.
func (d *Destination) RemoveSession(ctx context.Context, session string) error {
	p, err := d.sessionPod(session)
	if err != nil {
		return err
	}
	return p.Remove(ctx, true)
}

// plainSessionPod finds the vessel pod of store that session brought
// (nil if none).
func plainSessionPod(store vesselpod.Store, session string) (handle.Pod, error) {
	if name := store.SessionPod(session); name != "" {
		return store.Handle(name), nil
	}
	return nil, nil
}
