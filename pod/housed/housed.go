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

// Recover removes the pods housing a vessel that a dead podctl left half
// started: a vessel still recorded as creating that nobody operates on.
// Its guest may run, but the podctl that started it never reported it
// running (a dock never answered "restored", so the source's vessel runs
// on), so it must go.
func Recover(ctx context.Context, m *pod.Manager) error {
	pods, err := m.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pods {
		if p.Spec.Vessel == nil {
			continue
		}
		if View(m, &p.Manifest).Abandoned(p.Spec.Vessel.Name) {
			errs = append(errs, m.Remove(ctx, p.Spec.Name, true))
		}
	}
	return errors.Join(errs...)
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

// RemoveVessel removes a pod housing a vessel, running or not.
func (d Dock) RemoveVessel(ctx context.Context, name string) error {
	return d.Manager.Remove(ctx, name, true)
}
