//go:build linux && cgo

// Package housed runs Wasm vessels inside native pods, on hosts that have
// the namespace layer.
//
// A housed vessel is a native pod (package pod) whose payload is the
// vessel's supervisor (`podctl _vessel`, see vesselpod.Supervise), run by
// a copy of the podctl binary bind-mounted at virtns.PodctlPath. The
// vessel's directory (manifest, prepared module, preopened directories,
// logs, control socket) lives at Root inside the pod, in its writable
// layer. So the vessel is both:
//
//   - a native pod: CRIU checkpoints, restores and migrates it with its
//     writable layer to a host of the same ISA, like any other pod; and
//   - a vessel: its supervisor answers the control socket, so it can be
//     stopped into a portable snapshot and migrated to a dock of any ISA.
//
// `podctl migrate --via auto` picks between the two by the destination's
// ISA. On the host, a housed vessel is seen through View: a vesselpod.Store
// rooted in the pod's mounted root filesystem, which shares the pod's file
// locks and Unix sockets.
package housed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/pod/handle"
	"github.com/podctl/podctl/pod/vesselpod"
	"github.com/podctl/podctl/virtns"
	"github.com/podctl/podctl/wasm/snapshot"
)

// Root is the vessel store's root inside a pod housing a vessel.
const Root = "/.vessel"

// startTimeout bounds the wait for a housed supervisor's start report
// (compiling a large module takes seconds).
const startTimeout = 2 * time.Minute

// Create prepares module through host's cache and starts it as a vessel
// housed in a new native pod named o.Name. On failure nothing of the pod
// is left.
func Create(ctx context.Context, m *pod.Manager, host vesselpod.Store, o vesselpod.CreateOptions, module []byte) (*pod.Manifest, error) {
	prepared, err := host.Prepare(ctx, o, module)
	if err != nil {
		return nil, err
	}
	return start(ctx, m, houseSpec(o.Name, o.Argv(), ""), func(inPod vesselpod.Store) (func(), error) {
		_, unlock, err := inPod.Install(o, prepared)
		return unlock, err
	})
}

// Receive makes a new pod housing the vessel of a portable snapshot and
// resumes it. The module comes from the snapshot or host's cache. On
// failure nothing of the pod is left.
func Receive(ctx context.Context, m *pod.Manager, host vesselpod.Store, snap *snapshot.Snapshot, o vesselpod.RestoreOptions) (*pod.Manifest, error) {
	if err := o.Check(snap); err != nil {
		return nil, err
	}
	prepared, err := host.ModuleFor(snap, o)
	if err != nil {
		return nil, err
	}
	name := o.Name
	if name == "" {
		name = snap.Meta[vesselpod.MetaName]
	}
	o.Name = name
	if err := supersede(ctx, m, name, snap.Meta); err != nil {
		return nil, err
	}
	resume := vesselpod.Store{Root: Root}.ResumePath(name)
	man, err := start(ctx, m, houseSpec(name, snap.WASI.Args, resume), func(inPod vesselpod.Store) (func(), error) {
		_, _, unlock, err := inPod.Unpack(snap, o, prepared)
		return unlock, err
	})
	if err != nil {
		return nil, err
	}
	os.Remove(m.PodPath(man, resume))
	return man, nil
}

// houseSpec is the spec of the pod housing the vessel name, which
// resumes from the in-pod snapshot file resume if it is set.
func houseSpec(name string, argv []string, resume string) pod.Spec {
	spec := pod.Spec{
		Name:    name,
		Image:   pod.ImageHost,
		Command: []string{virtns.PodctlPath, vesselpod.SupervisorArg, Root, name},
		Env:     []string{vesselpod.HousedEnv + "=1"},
		Vessel:  &pod.VesselRef{Name: name, Args: argv},
	}
	if resume != "" {
		spec.Command = append(spec.Command, resume)
	}
	if v := os.Getenv(vesselpod.EngineEnv); v != "" {
		spec.Env = append(spec.Env, vesselpod.EngineEnv+"="+v)
	}
	return spec
}

// start creates a pod housing a vessel, whose directory seed makes in the
// pod's vessel store (returning with the vessel's operation lock held),
// and waits for the supervisor's start report. The lock is held until the
// vessel is recorded as created, so that Recover can tell a vessel being
// started from one a dead podctl left half started.
func start(ctx context.Context, m *pod.Manager, spec pod.Spec, seed func(inPod vesselpod.Store) (unlock func(), err error)) (*pod.Manifest, error) {
	unlock := func() {}
	man, err := m.CreateWith(ctx, spec, func(rootfs string) error {
		u, err := seed(vesselpod.Store{Root: filepath.Join(rootfs, Root)})
		if err == nil {
			unlock = u
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	defer unlock()
	err = waitStarted(ctx, m, man)
	if err == nil {
		failpoint.Hit(ctx, "housed:started")
	}
	if err == nil && failpoint.Armed("housed:fail-after-start") {
		err = errors.New("injected failure after the vessel started")
	}
	if err == nil {
		err = View(m, man).Launched(spec.Vessel.Name)
	}
	if err != nil {
		if rerr := m.Remove(context.WithoutCancel(ctx), spec.Name, true); rerr != nil {
			err = fmt.Errorf("%w (and removing its pod failed: %v)", err, rerr)
		}
		return nil, err
	}
	return man, nil
}

// Recover settles what dead podctls left of the vessels housed in pods
// of m (vesselpod.Store.Settle): a pod whose vessel was half started goes
// (its guest may run, but nobody was told it runs: a received one is
// held, and its source runs its own on); a prepared one stays held for
// its source's decision; a handed-over one goes or runs on as its dock
// says, asked through handovers (nil: it stays stopped).
func Recover(ctx context.Context, m *pod.Manager, handovers handle.HandoverResolver) error {
	pods, err := m.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pods {
		if p.Spec.Vessel == nil {
			continue
		}
		view := View(m, &p.Manifest)
		view.Handovers = handovers
		errs = append(errs, view.Settle(ctx, p.Spec.Vessel.Name, discardHousing(m, p.Spec.Name)))
	}
	return errors.Join(errs...)
}

// List lists m's pods as `podctl ps` shows them. It first settles the
// vessels housed in them that a podctl that died left stopped
// (settleStopped); then a pod housing a vessel in the middle of a
// migration shows the vessel's state (MigrationState) instead of
// "running".
func List(ctx context.Context, m *pod.Manager, handovers handle.HandoverResolver) ([]*pod.Status, error) {
	pods, err := m.List(ctx)
	if err != nil {
		return nil, err
	}
	// A dock that does not answer leaves its vessels handed over: the
	// list shows them so.
	if n, _ := settleStopped(ctx, m, pods, handovers); n > 0 {
		if pods, err = m.List(ctx); err != nil {
			return nil, err
		}
	}
	for _, p := range pods {
		if st := MigrationState(m, &p.Manifest); st != "" && p.Status == string(virtns.StatusRunning) {
			p.Status = string(st)
		}
	}
	return pods, nil
}

// settleStopped settles the vessels housed in pods of m that a podctl
// that died left stopped (vesselpod.Store.SettleStopped): a handed-over
// one goes with its pod, or runs on, as its dock says (asked through
// handovers); one stopped before its handover runs on. It reports how
// many were handed over (whose pods may be gone now).
func settleStopped(ctx context.Context, m *pod.Manager, pods []*pod.Status, handovers handle.HandoverResolver) (int, error) {
	var errs []error
	n := 0
	for _, p := range pods {
		if p.Spec.Vessel == nil || p.Status != string(virtns.StatusRunning) {
			continue
		}
		if MigrationState(m, &p.Manifest) == vesselpod.StateHandedOver {
			n++
		}
		view := View(m, &p.Manifest)
		view.Handovers = handovers
		errs = append(errs, view.SettleStopped(ctx, p.Spec.Vessel.Name, discardHousing(m, p.Spec.Name)))
	}
	return n, errors.Join(errs...)
}

// MigrationState is the state of the vessel that man houses if it is in
// the middle of a migration (vesselpod.StatePrepared or StateHandedOver),
// or half created (StateCreating): its pod runs, but its guest does not.
// It is "" otherwise.
func MigrationState(m *pod.Manager, man *pod.Manifest) vesselpod.State {
	if man.Spec.Vessel == nil {
		return ""
	}
	v, err := View(m, man).Load(man.Spec.Vessel.Name)
	if err != nil {
		return ""
	}
	switch v.State {
	case vesselpod.StatePrepared, vesselpod.StateHandedOver, vesselpod.StateCreating:
		return v.State
	}
	return ""
}

// discardHousing discards a housed vessel with the pod housing it.
func discardHousing(m *pod.Manager, housing string) vesselpod.Discard {
	return func(ctx context.Context, _ string) error { return m.Remove(ctx, housing, true) }
}

// waitStarted polls until the housed supervisor has reported its start,
// or its pod has stopped running.
func waitStarted(ctx context.Context, m *pod.Manager, man *pod.Manifest) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	view, vessel := View(m, man), man.Spec.Vessel.Name
	for {
		if done, err := view.Started(vessel); done {
			return err
		}
		st, err := m.Inspect(ctx, man.Spec.Name)
		if err != nil {
			return err
		}
		if st.Status != string(virtns.StatusRunning) {
			if done, err := view.Started(vessel); done {
				return err
			}
			return errdefs.New(errdefs.Internal, "vessel pod %s: its supervisor exited before starting the guest (see podctl logs)", man.Spec.Name)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vessel pod %s: supervisor did not start the guest: %w", man.Spec.Name, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// View is the host's view of the vessel a pod houses: a store rooted in
// the pod's root filesystem (see pod.Manager.PodPath).
func View(m *pod.Manager, man *pod.Manifest) vesselpod.Store {
	return vesselpod.Store{Root: m.PodPath(man, Root)}
}

// Dock receives vessels into pods housing them (see dock.VesselHost).
type Dock struct {
	Manager *pod.Manager
	// Host is this host's (unhoused) vessel store, whose module cache
	// serves every vessel.
	Host vesselpod.Store
}

// HasModule reports whether this host has the prepared module.
func (d Dock) HasModule(hash [32]byte) bool { return d.Host.HasModule(hash) }

// ReceiveVessel makes a pod housing the snapshot's vessel and resumes it.
func (d Dock) ReceiveVessel(ctx context.Context, snap *snapshot.Snapshot, o vesselpod.RestoreOptions) (string, error) {
	man, err := Receive(ctx, d.Manager, d.Host, snap, o)
	if err != nil {
		return "", err
	}
	return man.Spec.Name, nil
}

// Decide carries out a source's decision on the vessel it migrated here
// in session (vesselpod.Store.Decide): an abort removes the pod housing
// it.
func (d Dock) Decide(ctx context.Context, session string, commit bool) error {
	mans, err := d.Manager.Manifests()
	if err != nil {
		return err
	}
	for _, p := range mans {
		if p.Spec.Vessel == nil {
			continue
		}
		view := View(d.Manager, p)
		if view.SessionPod(session) != "" {
			return view.Decide(ctx, session, commit, discardHousing(d.Manager, p.Spec.Name))
		}
	}
	if commit {
		return errdefs.New(errdefs.NotFound, "no vessel was received here in session %s", session)
	}
	return nil
}

// supersede removes the pod name if it houses a vessel held prepared from
// an earlier migration of the pod whose snapshot's metadata is meta
// (vesselpod.Store.Supersede).
func supersede(ctx context.Context, m *pod.Manager, name string, meta vesselpod.Meta) error {
	man, err := m.Manifest(name)
	if err != nil || man.Spec.Vessel == nil {
		return nil
	}
	return View(m, man).Supersede(ctx, man.Spec.Vessel.Name, meta, discardHousing(m, name))
}

// SessionPod finds the pod that a migration session brought to m ("" if
// none): a native pod, or a vessel housed in one (moved through CRIU, the
// housing pod records the session; as a portable snapshot, the vessel
// does, in the store the pod houses).
func SessionPod(m *pod.Manager, session string) (string, error) {
	name, err := m.SessionPod(session)
	if err != nil || name != "" {
		return name, err
	}
	mans, err := m.Manifests()
	if err != nil {
		return "", err
	}
	for _, p := range mans {
		if p.Spec.Vessel != nil && View(m, p).SessionPod(session) != "" {
			return p.Spec.Name, nil
		}
	}
	return "", nil
}
