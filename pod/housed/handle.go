//go:build linux && cgo

package housed

import (
	"context"
	"io"
	"os"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/pod/handle"
	"github.com/podctl/podctl/pod/vesselpod"
)

// Handle is a vessel housed in a native pod, as a handle.Pod: the house
// is what is inspected, stopped, removed and exec'd into; its logs are
// the guest's, which travel with it.
type Handle struct {
	*pod.NativeHandle
	house *pod.Manifest
}

// House is the manifest of the native pod that houses the vessel.
func (h *Handle) House() *pod.Manifest { return h.house }

// Vessel is the host's view of the vessel and the vessel's name in it.
func (h *Handle) Vessel() (vesselpod.Store, string) {
	return View(h.Manager(), h.house), h.house.Spec.Vessel.Name
}

// Kind is handle.Housed.
func (h *Handle) Kind() handle.Kind { return handle.Housed }

// Logs writes the guest's output.
func (h *Handle) Logs(ctx context.Context, follow bool, w io.Writer) error {
	view, name := h.Vessel()
	return view.Logs(ctx, name, follow, w)
}

// Checkpoint writes the house as a CRIU archive, or with o.Portable the
// vessel's portable snapshot, which must then go to a file of its own.
func (h *Handle) Checkpoint(ctx context.Context, o handle.CheckpointOptions) (handle.Report, error) {
	if !o.Portable {
		return h.NativeHandle.Checkpoint(ctx, o)
	}
	if o.Output == "" {
		return nil, errdefs.New(errdefs.Usage, "podctl checkpoint --portable: say where the snapshot goes with -o FILE")
	}
	view, name := h.Vessel()
	return view.Handle(name).Checkpoint(ctx, o)
}

// CreateVessel starts module as a new vessel pod: housed in a native pod
// of housing, or, when housing is nil (podctl is not root), as a plain
// vessel pod of vessels. It returns the new pod's manifest.
func CreateVessel(ctx context.Context, housing *pod.Manager, vessels vesselpod.Store, o vesselpod.CreateOptions, module []byte) (any, error) {
	if housing == nil {
		return vessels.Create(ctx, o, module)
	}
	return Create(ctx, housing, vessels, o, module)
}

// Open returns the pod name, whatever its kind: a vessel pod of vessels,
// else a vessel housed in a native pod, else a native pod, both of the
// manager that manager returns (asked for only then, so that vessel pods
// need no root). A name that is no vessel pod and no pod the manager can
// read is returned as a native pod, whose methods then say what is wrong.
func Open(vessels vesselpod.Store, name string, manager func() (*pod.Manager, error)) (handle.Pod, error) {
	if vesselpod.Exists(vessels.Root, name) {
		return vessels.Handle(name), nil
	}
	m, err := manager()
	if err != nil {
		return nil, err
	}
	native := m.Handle(name)
	// Only the record is read: the kernel is asked nothing (a frozen
	// pod's state can take seconds to read) until the command runs.
	if man, err := m.Manifest(name); err == nil && man.Spec.Vessel != nil {
		return &Handle{NativeHandle: native, house: man}, nil
	}
	return native, nil
}

// OpenSource returns what `podctl restore` restores from source: a
// snapshot file, resumed housed in a native pod of housing (or, when
// housing is nil, as a vessel pod of vessels); else what Open returns,
// a checkpointed pod or, for any other file, a native pod's restore of a
// CRIU archive.
func OpenSource(vessels vesselpod.Store, source string, housing *pod.Manager, manager func() (*pod.Manager, error)) (handle.Restorer, error) {
	if _, err := os.Stat(source); err == nil && vesselpod.IsSnapshotFile(source) {
		f := vesselpod.SnapshotFile{Path: source, Store: vessels}
		if housing != nil {
			f.Into = Dock{Manager: housing, Host: vessels}
		}
		return f, nil
	}
	return Open(vessels, source, manager)
}
