package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/podctl/podctl/dock"
	"github.com/podctl/podctl/internal/errdefs"
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
	// it, held if o.Session is set; it returns the pod's name. On
	// failure nothing is left.
	ReceiveVessel(ctx context.Context, snap *snapshot.Snapshot, o vesselpod.RestoreOptions) (string, error)
	// Decide carries out a source's decision on the vessel it migrated
	// here in session (see dock.VesselReceiver).
	Decide(ctx context.Context, session string, commit bool) error
}

// VesselReceiver is the destination side of a migration as a portable
// snapshot: it decodes the snapshot a dock receives, within the limits a
// vessel may have and the request's share of the dock's memory, and
// resumes it in its Host.
type VesselReceiver struct {
	Host VesselHost
	// Modules keeps the host's module cache, where the modules that
	// snapshots carry are stored, within its size (nil: every module
	// received stays).
	Modules *vesselpod.ModuleCache
}

// HasModule reports whether the host has a prepared module.
func (r VesselReceiver) HasModule(hash [32]byte) bool { return r.Host.HasModule(hash) }

// ReceiveVessel decodes the snapshot t carries and resumes it as the pod
// t.Name (empty: the snapshot's). The restore time it returns starts
// once the snapshot is decoded.
//
// Everything the receive allocates for the snapshot is reserved from
// t.Memory before it is (its decoding, the bytes it keeps for the
// supervisor, an encoding again if it keeps none), and decoding is
// bounded by the whole budget (snapshot.Limits.MaxTotalBytes); what it
// writes before the vessel runs is reserved from t.Disk. A module the
// snapshot carries goes to the module cache, and out again if the
// receive fails.
func (r VesselReceiver) ReceiveVessel(ctx context.Context, t *dock.VesselTransfer) (string, time.Duration, error) {
	o := vesselpod.RestoreOptions{Name: t.Name, Session: t.Session}
	if t.Memory != nil {
		o.MemoryBudget = t.Memory
		if limit := t.Memory.Limit(); limit > 0 {
			o.MaxDecodeBytes = max(limit-vesselpod.DecodeBuffers, 1)
		}
	}
	if t.Disk != nil {
		o.DiskBudget = t.Disk
	}
	snap, encoded, err := vesselpod.DecodeSnapshot(t.Body, t.Size, o)
	if err != nil {
		if errors.Is(err, snapshot.ErrOverBudget) && o.MaxDecodeBytes > 0 {
			err = errdefs.New(errdefs.Unsupported, "%w: more than the dock's %d MiB of memory for receives (--memory-budget) can hold", err, t.Memory.Limit()>>20)
		}
		return "", 0, err
	}
	o.Encoded = encoded
	failpoint.Hit(ctx, "dock:vessel-decoded")
	var hold *vesselpod.ModuleHold
	if r.Modules != nil {
		if hold, err = r.Modules.Receiving(snap); err != nil {
			return "", 0, err
		}
	}
	start := time.Now()
	pod, err := r.Host.ReceiveVessel(ctx, snap, o)
	if hold != nil {
		if derr := hold.Done(err == nil); derr != nil && err != nil {
			err = fmt.Errorf("%w (and removing its module failed: %v)", err, derr)
		}
	}
	if err != nil {
		return "", 0, err
	}
	return pod, time.Since(start), nil
}

// Decide carries out a source's decision on the vessel it migrated here
// in session.
func (r VesselReceiver) Decide(ctx context.Context, session string, commit bool) error {
	return r.Host.Decide(ctx, session, commit)
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

// Decide is vesselpod.Store.Decide; an abort discards the vessel pod.
func (p PlainVessels) Decide(ctx context.Context, session string, commit bool) error {
	return p.Store.Decide(ctx, session, commit, p.Store.Discard)
}
