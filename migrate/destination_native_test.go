//go:build linux && cgo

package migrate

import (
	"testing"

	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/pod/housed"
)

// TestNativeDestination checks what a dock of a host with native pods
// receives with, and that it recovers the housing pods last: whether a
// housed vessel was abandoned can only be told once the native pods are
// consistent again.
func TestNativeDestination(t *testing.T) {
	m := new(pod.Manager)
	images := pod.ImagePolicy{Roots: []string{"/srv/images"}}
	d := NativeDestination(m, vesselStoreForTest(t), images)
	if r, ok := d.Pods.(NativeReceiver); !ok || r.Manager != m || r.Images.Roots[0] != "/srv/images" {
		t.Fatalf("native pods go to %#v", d.Pods)
	}
	if h, ok := d.Vessels.(housed.Dock); !ok || h.Manager != m {
		t.Fatalf("vessels go to %#v, want pods housing them", d.Vessels)
	}
	if d.guard == nil {
		t.Fatal("a dock of native pods lets its pods reach its port")
	}
	if got, want := recoveryOrder(d), "vessel pods, native pods, housed vessels"; got != want {
		t.Fatalf("recovery order %q, want %q", got, want)
	}
}
