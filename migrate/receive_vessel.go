package migrate

import (
	"context"
	"io"
	"time"

	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/pod/vesselpod"
	"github.com/podctl/podctl/wasm/snapshot"
)

// VesselHost keeps the vessels a dock receives: PlainVessels, or pods
// housing them (housed.Dock) on hosts with the namespace layer.
type VesselHost interface {
	// HasModule reports whether the host has a prepared module.
	HasModule(hash [32]byte) bool
	// ReceiveVessel makes a new vessel pod from a snapshot and resumes
	// it; it returns the pod's name. On failure nothing is left.
	ReceiveVessel(ctx context.Context, snap *snapshot.Snapshot, o vesselpod.RestoreOptions) (string, error)
	// RemoveVessel removes a received vessel pod, running or not.
	RemoveVessel(ctx context.Context, name string) error
}

// VesselReceiver is the destination side of a migration as a portable
// snapshot: it decodes the snapshot a dock receives, within the limits a
// vessel may have, and resumes it in its Host.
type VesselReceiver struct{ Host VesselHost }

// HasModule reports whether the host has a prepared module.
func (r VesselReceiver) HasModule(hash [32]byte) bool { return r.Host.HasModule(hash) }

// ReceiveVessel decodes a snapshot of size bytes from body and resumes it
// as the pod name (empty: the snapshot's). The restore time it returns
// starts once the snapshot is decoded.
func (r VesselReceiver) ReceiveVessel(ctx context.Context, body io.Reader, size int64, name string) (string, time.Duration, error) {
	o := vesselpod.RestoreOptions{Name: name}
	snap, encoded, err := vesselpod.DecodeSnapshot(body, size, o)
	if err != nil {
		return "", 0, err
	}
	o.Encoded = encoded
	failpoint.Hit(ctx, "dock:vessel-decoded")
	start := time.Now()
	pod, err := r.Host.ReceiveVessel(ctx, snap, o)
	if err != nil {
		return "", 0, err
	}
	return pod, time.Since(start), nil
}

// RemoveVessel removes a received vessel pod, running or not.
func (r VesselReceiver) RemoveVessel(ctx context.Context, name string) error {
	return r.Host.RemoveVessel(ctx, name)
}

// PlainVessels keeps received vessels as vessel pods of a store.
type PlainVessels struct{ Store vesselpod.Store }

// HasModule reports whether the store's cache has the prepared module.
func (p PlainVessels) HasModule(hash [32]byte) bool { return p.Store.HasModule(hash) }

// ReceiveVessel is vesselpod.Store.Receive.
func (p PlainVessels) ReceiveVessel(ctx context.Context, snap *snapshot.Snapshot, o vesselpod.RestoreOptions) (string, error) {
	m, err := p.Store.Receive(ctx, snap, o)
	if err != nil {
		return "", err
	}
	return m.Spec.Name, nil
}

// RemoveVessel is vesselpod.Store.Remove, forced.
func (p PlainVessels) RemoveVessel(ctx context.Context, name string) error {
	return p.Store.Remove(ctx, name, true)
}
