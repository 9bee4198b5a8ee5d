package vesselpod

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/internal/names"
	"github.com/podctl/podctl/pod/handle"
)

// A vessel's migration commits in the same two steps as a native pod's
// (package pod, and ARCHITECTURE.md, "The commit point"):
//
//	destination: creating ──resumed, held──▶ prepared ──commit──▶ created (runs)
//	                                                  └─abort──▶ (removed)
//	source:      created (stopped) ──"restored" read──▶ handed-over ──dock confirms──▶ (removed)
//	                    └─failure before that: runs on here; the dock is told to abort
//
// A held guest is resumed (its module compiled, its memory, globals and
// WASI state restored) but runs nothing before Decide's commit.

// Discard removes a vessel pod that must go, with everything that holds
// it: the pod's directory for a plain vessel pod (Store.Discard), the
// native pod housing it for a housed one.
type Discard func(ctx context.Context, name string) error

// Discard ends the guest of the vessel pod name, if it runs, and removes
// the pod. The caller holds its lock.
func (s Store) Discard(ctx context.Context, name string) error {
	if s.running(name) {
		if err := s.end(ctx, name); err != nil {
			return err
		}
	}
	return os.RemoveAll(s.podDir(name))
}

// Decide carries out a source's decision on the pod it migrated here in
// session: commit runs its held guest (a commit repeated after it runs is
// confirmed again), abort discards it (an abort of a session that left
// nothing here is not an error). Committing a session this store knows
// nothing of fails with errdefs.NotFound: the source may then run its own
// copy again.
func (s Store) Decide(ctx context.Context, session string, commit bool, discard Discard) error {
	name := s.SessionPod(session)
	if name == "" {
		if commit {
			return errdefs.New(errdefs.NotFound, "no vessel was received here in session %s", session)
		}
		return nil
	}
	l, err := s.lock(name)
	if err != nil {
		return err
	}
	defer l.Unlock()
	m, err := s.Load(name)
	if err != nil {
		return err
	}
	if m.Session != session {
		return errdefs.New(errdefs.Conflict, "vessel pod %s changed while the decision on session %s came", name, session)
	}
	switch {
	case m.State == StatePrepared && commit:
		// Recorded first: a podctl that dies before the guest runs
		// leaves a created pod, whose guest recovery runs on.
		m.State = StateCreated
		if err := s.save(m); err != nil {
			return err
		}
		failpoint.Hit(ctx, "decide:committed")
		if err := s.runOn(ctx, name); err != nil {
			return fmt.Errorf("vessel pod %s: run the committed guest: %w", name, err)
		}
		failpoint.Hit(ctx, "decide:released")
		return nil
	case m.State == StatePrepared:
		return discard(ctx, name)
	case commit:
		return nil // committed before
	default:
		return errdefs.New(errdefs.Conflict, "vessel pod %s of session %s runs here already: it cannot be aborted", name, session)
	}
}

// SessionPod is the pod that the migration session brought to this store
// ("" if none).
func (s Store) SessionPod(session string) string {
	ents, _ := os.ReadDir(s.dir())
	for _, e := range ents {
		if m, err := s.Load(e.Name()); err == nil && m.Session == session {
			return e.Name()
		}
	}
	return ""
}

// Supersede discards the pod name if it is held prepared from an earlier
// migration of the pod snap was taken from: that its source migrates it
// again proves it ran it on, so its abort of the earlier migration was
// lost.
func (s Store) Supersede(ctx context.Context, name string, snap Meta, discard Discard) error {
	old, err := s.Load(name)
	if err != nil || old.State != StatePrepared || old.SourceID == "" || old.SourceID != snap[MetaID] {
		return nil
	}
	return s.Decide(ctx, old.Session, false, discard)
}

// Meta is a snapshot's metadata (snapshot.Snapshot.Meta).
type Meta = map[string]string

// runOn lets the stopped or held guest of the pod name run on.
func (s Store) runOn(ctx context.Context, name string) error {
	c, err := s.dial(name)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.do(ctx, request{Op: opContinue})
}

// HandOver records, durably, that the stopped vessel is the destination's
// from now on: it must never run here again, even if the migration fails
// afterwards. It stays stopped until Commit ends it, or, after a crash,
// until recovery learns from the dock that it runs there (Recover).
func (o *Outgoing) HandOver(h handle.Handover) error {
	o.man.State, o.man.Handover = StateHandedOver, &h
	if err := o.s.save(o.man); err != nil {
		o.man.State, o.man.Handover = StateCreated, nil
		return fmt.Errorf("record the handover: %w", err)
	}
	return nil
}

// HandedOver reports whether HandOver recorded the handover.
func (o *Outgoing) HandedOver() bool { return o.man.State == StateHandedOver }

// Reclaim takes back a handed-over vessel that its dock says it never
// had: it runs on here.
func (o *Outgoing) Reclaim(ctx context.Context) error {
	o.man.State, o.man.Handover = StateCreated, nil
	if err := o.s.save(o.man); err != nil {
		return err
	}
	o.done = true
	return o.ctl.do(ctx, request{Op: opContinue})
}

// Recover settles what dead podctls left of this store's pods (Settle),
// and discards the ones half created. Once ctx is done it stops before
// the next pod; the next Recover finishes the job.
func (s Store) Recover(ctx context.Context) error {
	ents, err := os.ReadDir(s.dir())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if names.Validate(e.Name()) == nil {
			errs = append(errs, s.Settle(ctx, e.Name(), s.Discard))
		}
	}
	return errors.Join(errs...)
}

// Settle finishes what a podctl that died left of the pod name, if
// nobody operates on it now:
//
//   - half created (creating, or no manifest): discarded. A guest that
//     started never had its start reported (a received one is held, and
//     its source was never told "restored").
//   - prepared: kept, its guest held, for its source's decision; unless
//     its supervisor is gone (the host restarted), which lost a guest
//     that never ran: discarded, and its source, told the dock has no
//     such pod, runs its own on.
//   - handed-over or created: see SettleStopped.
//
// It runs when a dock starts, before any podctl there can create a pod.
func (s Store) Settle(ctx context.Context, name string, discard Discard) error {
	return s.settle(ctx, name, discard, true)
}

// SettleStopped settles the pod name if a podctl that died left its guest
// stopped, and nobody operates on it now:
//
//   - handed-over: the dock is asked (Store.Handovers): discarded if the
//     dock runs the vessel, run on here if the dock never had it.
//   - created, with a live supervisor: its guest runs on. A podctl that
//     died while a checkpoint or a migration had stopped it, before the
//     handover, leaves it stopped, and nothing else would run it again.
//
// Unlike Settle, it leaves half-created pods alone, so any podctl
// command may run it while others create pods.
func (s Store) SettleStopped(ctx context.Context, name string, discard Discard) error {
	return s.settle(ctx, name, discard, false)
}

func (s Store) settle(ctx context.Context, name string, discard Discard, halfCreated bool) error {
	l, err := s.lock(name)
	if err != nil {
		return nil // busy: someone is on it
	}
	defer l.Unlock()
	m, err := s.Load(name)
	running := s.running(name)
	switch {
	case !halfCreated && err != nil:
		return nil
	case err != nil && errdefs.Is(err, errdefs.NotFound) || err == nil && m.State == StateCreating:
		return discard(ctx, name)
	case err != nil:
		return err
	case m.State == StatePrepared && !running && halfCreated:
		return discard(ctx, name)
	case m.State == StateHandedOver:
		return s.resolveHandover(ctx, m, discard)
	case m.State == StateCreated && running:
		return s.runOn(ctx, name)
	}
	return nil
}

// resolveHandover settles a handed-over pod as its dock says; the caller
// holds its lock.
func (s Store) resolveHandover(ctx context.Context, m *Manifest, discard Discard) error {
	if s.Handovers == nil || m.Handover == nil {
		return nil
	}
	ran, err := s.Handovers(ctx, *m.Handover)
	if err != nil {
		return fmt.Errorf("vessel pod %s was handed over to %s, which does not answer (it stays stopped here until it does): %w", m.Spec.Name, m.Handover.Dock, err)
	}
	if ran {
		return discard(ctx, m.Spec.Name)
	}
	m.State, m.Handover = StateCreated, nil
	if err := s.save(m); err != nil {
		return err
	}
	return s.runOn(ctx, m.Spec.Name)
}

// settleStopped runs SettleStopped on every pod of this store.
func (s Store) settleStopped(ctx context.Context) error {
	ents, _ := os.ReadDir(s.dir())
	var errs []error
	for _, e := range ents {
		if names.Validate(e.Name()) == nil {
			errs = append(errs, s.SettleStopped(ctx, e.Name(), s.Discard))
		}
	}
	return errors.Join(errs...)
}
