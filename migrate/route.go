// Package migrate moves a running pod to a dock. It decides the route a
// pod takes (through CRIU, or as a portable snapshot of a Wasm vessel)
// from the kind of pod, the user's --via and the dock's ISA; it runs the
// source side of either route (Native, Vessel, HousedVessel) and the
// destination side (NativeReceiver, VesselReceiver, Destination), with
// package dock carrying the bytes between them; and it reports what one
// migration took as a Result, whichever route it went.
package migrate

import (
	"context"
	"runtime"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/pod/handle"
)

// The routes a user can ask for with --via.
const (
	ViaAuto = "auto" // CRIU where it can go, the portable snapshot elsewhere
	ViaCRIU = "criu"
	ViaWasm = "wasm"
)

// Route is the way one migration goes.
type Route int

const (
	// RouteCRIU sends CRIU images and memory: same ISA, any program, TCP
	// connections kept.
	RouteCRIU Route = iota
	// RouteSnapshot sends a vessel's portable snapshot: any ISA.
	RouteSnapshot
)

func (r Route) String() string {
	if r == RouteSnapshot {
		return ViaWasm
	}
	return ViaCRIU
}

// CheckVia refuses a --via that is not auto, criu or wasm, or that a pod
// of kind k can never take, before any dock is asked.
func CheckVia(name string, k handle.Kind, via string) error {
	switch via {
	case ViaAuto:
		return nil
	case ViaWasm:
		if k == handle.Native {
			return errdefs.New(errdefs.Unsupported, "pod %s is a native pod, not a Wasm vessel: it can only migrate through CRIU", name)
		}
		return nil
	case ViaCRIU:
		if k == handle.Vessel {
			return errdefs.New(errdefs.Unsupported, "pod %s is a Wasm vessel not housed in a native pod (it was made by a podctl that is not root): it migrates as a portable snapshot (--via wasm or auto), not through CRIU", name)
		}
		return nil
	}
	return errdefs.New(errdefs.InvalidArgument, "invalid --via %q: want criu, wasm or auto", via)
}

// ChooseRoute decides how the pod name, of kind k, goes to a dock, given
// the user's via. Only a housed vessel has a choice: CRIU when the dock
// has this host's ISA, the portable snapshot otherwise; dockISA is asked
// for it only then.
func ChooseRoute(ctx context.Context, name string, k handle.Kind, via string, dockISA func(context.Context) (string, error)) (Route, error) {
	if err := CheckVia(name, k, via); err != nil {
		return 0, err
	}
	switch {
	case k == handle.Native:
		return RouteCRIU, nil
	case k == handle.Vessel, via == ViaWasm:
		return RouteSnapshot, nil
	}
	isa, err := dockISA(ctx)
	if err != nil {
		return 0, err
	}
	if isa == runtime.GOARCH {
		return RouteCRIU, nil
	}
	if via == ViaCRIU {
		return 0, errdefs.New(errdefs.Unsupported, "pod %s houses a Wasm vessel, but CRIU cannot move it to a dock of another ISA (%s): use --via wasm or auto", name, isa)
	}
	return RouteSnapshot, nil
}

// Options are what a user may ask of one migration beyond its route.
type Options struct {
	// Name renames the pod at the destination.
	Name string
	// Live resumes the pod at the destination before its memory has
	// arrived (CRIU's post-copy).
	Live bool
	// Force migrates to a dock whose CPU lacks features of this host's.
	Force bool
	// Progress, if set, is called now and then during a migration through
	// CRIU with the phase, the bytes sent so far and an estimate of the
	// total (the pod's memory use).
	Progress func(phase string, sent, total int64)
	// PKI and Cert are the --pki directory and certificate this host
	// reached the dock with, recorded with a handover so that recovery
	// can reach the dock again (pod.Handover).
	PKI, Cert string
}

// Check refuses options the route cannot honour for a pod of kind k.
func (o Options) Check(k handle.Kind, r Route) error {
	switch {
	case r == RouteCRIU:
		return nil
	case k == handle.Vessel && (o.Name != "" || o.Live || o.Force):
		return errdefs.New(errdefs.Usage, "podctl migrate: --name, --live and --force are for pods that migrate through CRIU")
	case o.Live || o.Force:
		return errdefs.New(errdefs.Usage, "podctl migrate: --live and --force are for migrations through CRIU")
	}
	return nil
}
