package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/virtns"
)

// Target is a running pod as the checkpoint stage sees it: the kernel
// objects it freezes, cuts from the network and dumps.
type Target struct {
	// Name is the pod's name, for errors.
	Name string
	// ID names the pod's container in Runtime and its firewall rules.
	ID string
	// CgroupPath is the pod's cgroup, which the freezer stops.
	CgroupPath string
	// Endpoint is the pod's address, which the network lock cuts off.
	Endpoint virtns.Endpoint
	// Runtime runs CRIU on the pod's container.
	Runtime virtns.Runtime
}

// Frozen is a pod stopped by the freezer, cut from the network and dumped
// by CRIU, that can still either resume or be stopped for good.
type Frozen struct {
	t Target
	// FrozenAt is the pod's last moment running; LockedAt when it was
	// frozen and off the network, so CRIU could start; ThawedAt when it
	// ran again (Resume).
	FrozenAt, LockedAt, ThawedAt time.Time

	criuVersion chan string
	// cleanupCtx is the context of Resume: Begin's without its
	// cancellation, since a frozen pod must thaw even after a Ctrl-C.
	cleanupCtx context.Context
}

// Begin prepares to freeze and dump the pod t; it starts asking CRIU for
// its version meanwhile, for the archive's manifest.
func Begin(ctx context.Context, t Target) *Frozen {
	f := &Frozen{t: t, cleanupCtx: context.WithoutCancel(ctx), criuVersion: make(chan string, 1)}
	go func() { f.criuVersion <- virtns.CRIUVersion(ctx) }()
	return f
}

// Dump freezes the pod, locks its network and dumps it with CRIU, leaving
// it frozen. The freeze waits until CRIU is ready to start (see
// virtns.CheckpointOptions.Freeze); it records when the pod stopped
// (FrozenAt) before anything else, so that o.Ready, called during a lazy
// dump, sees it. On error the pod has been resumed.
func (f *Frozen) Dump(ctx context.Context, o virtns.CheckpointOptions) error {
	t := f.t
	// The runtime calls Freeze once CRIU is ready to start.
	o.Freeze = func() error {
		lastRan, err := virtns.Freeze(ctx, t.CgroupPath)
		if err != nil {
			return err
		}
		f.FrozenAt = lastRan
		if err := (virtns.Firewall{}).LockPod(ctx, t.ID, t.Endpoint); err != nil {
			virtns.Thaw(f.cleanupCtx, t.CgroupPath)
			return err
		}
		f.LockedAt = time.Now()
		failpoint.Hit(ctx, "checkpoint:frozen")
		return nil
	}
	// The pod is frozen by podctl, so CRIU leaves it frozen (it restores
	// the freezer state it found) instead of killing it: the pod can still
	// resume if what follows the dump fails.
	o.LeaveRunning = true
	if err := t.Runtime.Checkpoint(ctx, t.ID, o); err != nil {
		if f.LockedAt.IsZero() {
			// Not frozen, or thawed already by Freeze itself.
			return fmt.Errorf("checkpoint %s: %w", t.Name, err)
		}
		if rerr := f.Resume(); rerr != nil {
			return fmt.Errorf("%w (and resuming the pod failed: %v)", err, rerr)
		}
		return err
	}
	failpoint.Hit(ctx, "checkpoint:dumped")
	return nil
}

// CRIUVersion is the version of the CRIU that dumps the pod.
func (f *Frozen) CRIUVersion() string {
	v := <-f.criuVersion
	f.criuVersion <- v
	return v
}

// Resume thaws the pod, then lifts its network lock. Thawing comes first
// because the lock takes longest to lift (nftables commits a rule
// deletion only after an RCU grace period, some 8 ms here): the pod runs
// that much sooner, its frames dropped a little longer, as they were
// while it was frozen.
func (f *Frozen) Resume() error {
	ctx := f.cleanupCtx
	err := virtns.Thaw(ctx, f.t.CgroupPath)
	f.ThawedAt = time.Now()
	return errors.Join(err, virtns.Firewall{}.UnlockPod(ctx, f.t.ID))
}
