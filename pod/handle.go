package pod

import (
	"context"
	"io"
	"time"

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

// Exec is Manager.Exec: only pods with processes have it.
func (h *NativeHandle) Exec(ctx context.Context, o ExecOptions) (int, error) {
	return h.m.Exec(ctx, h.name, o)
}
