//go:build linux && cgo

package migrate

import (
	"context"

	"github.com/podctl/podctl/dock"
	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/pod/housed"
)

// HousedVessel moves the vessel housed in the native pod house of m to
// the dock c as a portable snapshot, as the pod o.Name (house's name if
// empty), and then removes the house here: see Vessel.
func HousedVessel(ctx context.Context, c *dock.Client, m *pod.Manager, house *pod.Manifest, o Options) (*Result, error) {
	if o.Name == "" {
		o.Name = house.Spec.Name
	}
	removeHouse := func(ctx context.Context) error { return m.Remove(ctx, house.Spec.Name, true) }
	return Vessel(ctx, c, housed.View(m, house), house.Spec.Vessel.Name, o, removeHouse)
}
