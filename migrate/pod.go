//go:build linux && cgo

package migrate

import (
	"context"

	"github.com/podctl/podctl/dock"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/pod/handle"
	"github.com/podctl/podctl/pod/housed"
	"github.com/podctl/podctl/pod/vesselpod"
)

// Pod moves the running pod p, of any kind, to the dock c: it chooses
// the route from p's kind, the user's via (auto, criu or wasm) and the
// dock's ISA, checks o against it, and runs Native, Vessel or
// HousedVessel. This is the one place that tells the kinds apart.
func Pod(ctx context.Context, p handle.Pod, c *dock.Client, via string, o Options) (*Result, error) {
	route, err := ChooseRoute(ctx, p.Name(), p.Kind(), via, c.ISA)
	if err != nil {
		return nil, err
	}
	if err := o.Check(p.Kind(), route); err != nil {
		return nil, err
	}
	switch p := p.(type) {
	case *vesselpod.Handle:
		return Vessel(ctx, c, p.Store(), p.Name(), o, nil)
	case *housed.Handle:
		if route == RouteSnapshot {
			return HousedVessel(ctx, c, p.Manager(), p.House(), o)
		}
		return Native(ctx, p.Manager(), p.Name(), c, o)
	case *pod.NativeHandle:
		return Native(ctx, p.Manager(), p.Name(), c, o)
	}
	return nil, errdefs.New(errdefs.Internal, "pod %s: nothing migrates a pod of kind %s", p.Name(), p.Kind())
}
