package pod

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/pod/handle"
	"github.com/podctl/podctl/restart"
	"github.com/podctl/podctl/virtns"
)

// A migration commits in two steps, so that a pod never runs on two hosts
// whatever dies when (see ARCHITECTURE.md, "The commit point"):
//
//	destination: receiving ──restored, frozen──▶ prepared ──commit──▶ created
//	                                                      └─abort──▶ (removed)
//	source:      created (frozen) ──"restored" read──▶ handed-over ──dock confirms──▶ (removed)
//	                    └─failure before that: runs on here; the dock is told to abort
//
// A prepared pod runs only once its source has recorded that it handed
// the pod over and said so; the source records that only once the dock
// has recorded the prepared pod. Whichever side dies, the survivor's
// record says what to do: a dock keeps a prepared pod frozen until its
// source decides; a source keeps a handed-over pod frozen until the dock
// confirms it runs there (or says it never had it).

const (
	// StatePrepared is a received pod, restored and frozen, that waits
	// for its source's decision (Manager.Decide).
	StatePrepared State = "prepared"
	// StateHandedOver is a migrated pod, frozen here, whose destination
	// was told to run it and has not confirmed yet (Handover).
	StateHandedOver State = "handed-over"
)

// Handover records where a handed-over pod went.
type Handover = handle.Handover

// Prepare restores the pod like Start, but frozen and without announcing
// its address, and records it as prepared in session: from then on a
// crash keeps it, and only Decide, on its source's word, runs it or
// removes it. It releases the pod's lock, which Decide takes; Close
// still removes the staging directory (a lazy-pages daemon may read it
// until then).
func (in *Incoming) Prepare(ctx context.Context, ex *restart.Extracted, lazy bool, session string) error {
	if lazy {
		l, err := in.m.store.tryLockPostCopy(in.man.Spec.Name)
		if err != nil {
			return in.fail(err)
		}
		in.postCopy = l
	}
	if _, err := in.start(ctx, ex, lazy, true); err != nil {
		return err
	}
	in.man.State, in.man.Session, in.man.PagesPending = StatePrepared, session, lazy
	if err := in.m.store.save(in.man); err != nil {
		return in.fail(err)
	}
	in.done = true
	in.lock.Unlock()
	in.lock = nil
	return nil
}

// Decide carries out a source's decision on the pod it migrated here in
// session: commit runs it (a commit repeated after the pod runs is
// confirmed again), abort removes it (an abort of a session that left
// nothing here is not an error). A commit of a session this host knows
// nothing of fails with errdefs.NotFound: the source may then resume its
// own copy.
func (m *Manager) Decide(ctx context.Context, session string, commit bool) error {
	name, err := m.SessionPod(session)
	if err != nil {
		return err
	}
	if name == "" {
		if commit {
			return errdefs.New(errdefs.NotFound, "no pod was received here in session %s", session)
		}
		return nil
	}
	pending, err := m.decideLocked(ctx, name, session, commit)
	if err != nil || !pending {
		return err
	}
	// Committed before, and still receiving its memory: the source
	// learns the outcome once post-copy ends.
	return m.waitForPages(ctx, name, session)
}

// decideLocked is Decide on the pod name, with its lock held. pending
// reports a pod committed before whose post-copy has not ended.
func (m *Manager) decideLocked(ctx context.Context, name, session string, commit bool) (pending bool, err error) {
	man, pl, err := m.loadLocked(ctx, name)
	if err != nil {
		return false, err
	}
	defer pl.Unlock()
	if man.Session != session {
		return false, errdefs.New(errdefs.Conflict, "pod %s changed while the decision on session %s came", name, session)
	}
	switch {
	case man.State == StatePrepared && commit:
		// Recorded first: if this podctl dies before the thaw, recovery
		// thaws a created pod it finds frozen.
		man.State, man.DisposableVolumes = StateCreated, nil
		if err := m.store.save(man); err != nil {
			return false, err
		}
		failpoint.Hit(ctx, "decide:committed")
		t, err := m.restartTarget(man)
		if err != nil {
			return false, err
		}
		if err := restart.Release(ctx, t); err != nil {
			return false, err
		}
		failpoint.Hit(ctx, "decide:released")
		return false, nil
	case man.State == StatePrepared:
		return false, m.teardown(ctx, man)
	case commit:
		return man.PagesPending, nil // committed before
	default:
		return false, errdefs.New(errdefs.Conflict, "pod %s of session %s runs here already: it cannot be aborted", name, session)
	}
}

// pagesWait bounds how long a repeated commit waits for a post-copy to
// end before it answers (the source asks again).
const pagesWait = time.Minute

// waitForPages answers a repeated commit of a pod still receiving its
// memory: nil once it has it all, errdefs.NotFound if it is gone (its
// post-copy failed: the source's copy may run again).
func (m *Manager) waitForPages(ctx context.Context, name, session string) error {
	ctx, cancel := context.WithTimeout(ctx, pagesWait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		man, err := m.store.Load(name)
		switch {
		case errdefs.Is(err, errdefs.NotFound) || err == nil && man.Session != session:
			return errdefs.New(errdefs.NotFound, "the pod of session %s is gone: its memory did not all arrive", session)
		case err != nil:
			return err
		case !man.PagesPending:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pod %s still receives its memory: %w", name, ctx.Err())
		case <-tick.C:
		}
	}
}

// Freeze stops the received pod at once: its memory stops arriving (see
// PagesLost).
func (in *Incoming) Freeze(ctx context.Context) error {
	_, err := virtns.Freeze(ctx, in.man.CgroupPath)
	return err
}

// PagesArrived records that a post-copy pod has all its memory.
func (in *Incoming) PagesArrived(ctx context.Context) error {
	err := in.m.editLocked(ctx, in.man.Spec.Name, in.man.Session, func(man *Manifest) error {
		man.PagesPending = false
		return nil
	})
	if in.postCopy != nil {
		in.postCopy.Unlock()
		in.postCopy = nil
	}
	return err
}

// PagesLost removes a post-copy pod whose memory stopped arriving: it
// cannot run without it, and its source, told that the dock no longer
// has it, runs its own copy again. The caller froze it first (Freeze).
func (in *Incoming) PagesLost(ctx context.Context) error {
	return in.m.editLocked(ctx, in.man.Spec.Name, in.man.Session, func(man *Manifest) error {
		return in.m.teardown(ctx, man)
	})
}

// editLocked calls edit on the pod name, with its lock held, if it is
// still the pod of session, and saves it unless edit removed it.
func (m *Manager) editLocked(ctx context.Context, name, session string, edit func(*Manifest) error) error {
	man, pl, err := m.loadLocked(ctx, name)
	if err != nil {
		return err
	}
	defer pl.Unlock()
	if man.Session != session {
		return errdefs.New(errdefs.NotFound, "pod %s is no longer the pod of session %s", name, session)
	}
	if err := edit(man); err != nil {
		return err
	}
	if _, err := m.store.Load(name); err != nil {
		return nil // removed
	}
	return m.store.save(man)
}

// supersede removes a prepared pod named name that came from the same
// source pod (sourceID) as a new migration: that its source migrates it
// again proves it resumed it there, so the decision on the old session,
// an abort, was lost.
func (m *Manager) supersede(ctx context.Context, name, sourceID string) error {
	old, err := m.store.Load(name)
	if err != nil || old.State != StatePrepared || old.SourceID != sourceID || sourceID == "" {
		return nil
	}
	return m.Decide(ctx, old.Session, false)
}

// SessionPod finds the pod that a migration session brought here ("" if
// none).
func (m *Manager) SessionPod(session string) (string, error) {
	names, err := m.store.names()
	if err != nil {
		return "", err
	}
	for _, n := range names {
		if man, err := m.store.Load(n); err == nil && man.Session == session {
			return n, nil
		}
	}
	return "", nil
}

// HandOver records, durably, that the pod is the destination's from now
// on: it must never resume here, even if the migration fails afterwards.
// The pod stays frozen until Commit removes it, or, after a crash, until
// recovery learns from the dock that it runs there (Options.Handovers).
func (out *Outgoing) HandOver(h Handover) error {
	out.man.State, out.man.Handover, out.man.DisposableVolumes = StateHandedOver, &h, out.man.Spec.NamedVolumes()
	if err := out.m.store.save(out.man); err != nil {
		out.man.State, out.man.Handover, out.man.DisposableVolumes = StateCreated, nil, nil
		return fmt.Errorf("record the handover: %w", err)
	}
	out.done = true
	return nil
}

// HandedOver reports whether HandOver recorded the handover.
func (out *Outgoing) HandedOver() bool { return out.man.State == StateHandedOver }

// Reclaim takes back a handed-over pod that its dock says it never had:
// it runs here again.
func (out *Outgoing) Reclaim(ctx context.Context) error {
	out.man.State, out.man.Handover, out.man.DisposableVolumes = StateCreated, nil, nil
	if err := out.m.store.save(out.man); err != nil {
		return err
	}
	return out.frozen.Resume()
}

// HandoverResolver asks a dock about a pod handed over to it (see
// handle.HandoverResolver).
type HandoverResolver = handle.HandoverResolver

// resolveHandovers settles the pods of this host left handed over by a
// podctl that died before the dock confirmed: each goes, or runs here
// again, as the dock says. The caller holds no lock.
func (m *Manager) resolveHandovers(ctx context.Context) error {
	if m.opts.Handovers == nil {
		return nil
	}
	names, err := m.store.names()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		man, err := m.store.Load(name)
		if err != nil || man.State != StateHandedOver {
			continue
		}
		pl, err := m.store.tryLockPod(name)
		if err != nil {
			continue // its migration is still at work
		}
		errs = append(errs, m.resolveHandover(ctx, name))
		pl.Unlock()
	}
	return errors.Join(errs...)
}

// resolveHandover settles one handed-over pod; the caller holds its lock.
func (m *Manager) resolveHandover(ctx context.Context, name string) error {
	man, err := m.store.Load(name)
	if err != nil || man.State != StateHandedOver || man.Handover == nil {
		return err
	}
	ran, err := m.opts.Handovers(ctx, *man.Handover)
	if err != nil {
		return fmt.Errorf("pod %s was handed over to %s, which does not answer (it stays frozen here until it does): %w", name, man.Handover.Dock, err)
	}
	if ran {
		return m.teardown(ctx, man)
	}
	man.State, man.Handover, man.DisposableVolumes = StateCreated, nil, nil
	if err := m.store.save(man); err != nil {
		return err
	}
	return errors.Join(virtns.Firewall{}.UnlockPod(ctx, man.ID), virtns.Thaw(ctx, man.CgroupPath))
}
