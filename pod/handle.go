package pod

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/human"
	"github.com/podctl/podctl/pod/handle"
)

// NativeHandle is a native pod as a handle.Pod. It holds only the name:
// each call finds the pod anew, and one that does not exist fails as the
// Manager's methods do.
type NativeHandle struct {
	m    *Manager
	name string
}

// Handle returns the native pod name as a handle.Pod.
func (m *Manager) Handle(name string) *NativeHandle { return &NativeHandle{m: m, name: name} }

// Manager is the pod's manager.
func (h *NativeHandle) Manager() *Manager { return h.m }

// Name is the pod's name.
func (h *NativeHandle) Name() string { return h.name }

// Kind is handle.Native.
func (h *NativeHandle) Kind() handle.Kind { return handle.Native }

// Inspect is Manager.Inspect.
func (h *NativeHandle) Inspect(ctx context.Context) (any, error) { return h.m.Inspect(ctx, h.name) }

// Logs is Manager.Logs.
func (h *NativeHandle) Logs(ctx context.Context, follow bool, w io.Writer) error {
	return h.m.Logs(ctx, h.name, follow, w)
}

// Stop is Manager.Stop.
func (h *NativeHandle) Stop(ctx context.Context, timeout time.Duration) error {
	return h.m.Stop(ctx, h.name, timeout)
}

// Remove is Manager.Remove.
func (h *NativeHandle) Remove(ctx context.Context, force bool) error {
	return h.m.Remove(ctx, h.name, force)
}

// RemoveWithVolumes is Manager.RemoveWithVolumes.
func (h *NativeHandle) RemoveWithVolumes(ctx context.Context, force bool) error {
	return h.m.RemoveWithVolumes(ctx, h.name, force)
}

// Exec is Manager.Exec: only pods with processes have it.
func (h *NativeHandle) Exec(ctx context.Context, o ExecOptions) (int, error) {
	return h.m.Exec(ctx, h.name, o)
}

// Checkpoint is Manager.Checkpoint. A native pod has no portable
// snapshot.
func (h *NativeHandle) Checkpoint(ctx context.Context, o handle.CheckpointOptions) (handle.Report, error) {
	if o.Portable {
		return nil, errdefs.New(errdefs.Unsupported, "pod %s is not a Wasm vessel: only a vessel has a portable snapshot", h.name)
	}
	comp, err := checkpoint.ParseCompression(o.Compression)
	if err != nil {
		return nil, err
	}
	return h.m.Checkpoint(ctx, h.name, CheckpointOptions{Output: o.Output, LeaveRunning: o.LeaveRunning, Compression: comp})
}

// Restore is Manager.Restore of the checkpointed pod, or of the archive
// file the handle was opened on.
func (h *NativeHandle) Restore(ctx context.Context, o handle.RestoreOptions) (handle.Report, error) {
	if o.MemoryLimit != 0 {
		return nil, errdefs.New(errdefs.Usage, "podctl restore: --memory is for vessel snapshots")
	}
	man, t, err := h.m.Restore(ctx, h.name, RestoreOptions{Name: o.Name, Force: o.Force})
	if err != nil {
		return nil, err
	}
	return &RestoreReport{Name: man.Spec.Name, IP: man.Endpoint.IP, Timings: *t}, nil
}

// RestoreReport describes a finished restore of a native pod.
type RestoreReport struct {
	Name    string     `json:"name"`
	IP      netip.Addr `json:"ip"`
	Timings Timings    `json:"timings"`
}

func (r *RestoreReport) String() string {
	return fmt.Sprintf("%s restored (%s): restore %s, total %s", r.Name, r.IP, human.Millis(r.Timings.Restore), human.Millis(r.Timings.Total))
}

func (r *CheckpointResult) String() string {
	t := r.Timings
	return fmt.Sprintf("%s (%s): frozen %s, dump %s, write %s, total %s",
		r.Archive, human.Bytes(r.Bytes), human.Millis(t.Frozen), human.Millis(t.Dump), human.Millis(t.Write), human.Millis(t.Total))
}
