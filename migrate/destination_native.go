//go:build linux && cgo

package migrate

import (
	"context"

	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/pod/handle"
	"github.com/podctl/podctl/pod/housed"
	"github.com/podctl/podctl/pod/vesselpod"
	"github.com/podctl/podctl/virtns"
)

// NativeDestination is a dock for native pods, restored by m with one of
// images, and for vessels, housed in native pods of m with store's module
// cache.
//
// It recovers the unhoused vessel pods of store first (they depend on
// nothing else), then the native pods m left half received or half
// removed, and last the housing pods whose vessel never reported its
// start: only a consistent set of native pods can tell those. While it
// serves, this host's pods cannot reach its port (virtns.GuardDock).
func NativeDestination(m *pod.Manager, store vesselpod.Store, images pod.ImagePolicy) *Destination {
	return &Destination{
		Pods:    NativeReceiver{Manager: m, Images: images},
		Vessels: housed.Dock{Manager: m, Host: store},
		store:   store,
		recovery: []recoveryStep{
			{"vessel pods", store.Recover},
			{"native pods", m.Recover},
			{"housed vessels", func(ctx context.Context) error { return housed.Recover(ctx, m, store.Handovers) }},
		},
		guard: virtns.Firewall{}.GuardDock,
		findSession: func(session string) (handle.Pod, error) {
			name, err := housed.SessionPod(m, session)
			if err != nil || name == "" {
				return nil, err
			}
			return housed.Open(store, name, func() (*pod.Manager, error) { return m, nil })
		},
	}
}
