//go:build linux && cgo

package main

import (
	"context"
	"os"

	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/pod/handle"
	"github.com/podctl/podctl/pod/housed"
	"github.com/podctl/podctl/pod/vesselpod"
)

// Run as root, this build houses vessel pods in native pods (package
// housed), so that they can also migrate through CRIU; otherwise they are
// plain vessel pods.

// housing returns the manager that houses vessel pods, or nil when they
// run unhoused (podctl is not root).
func (g *globalOptions) housing() (*pod.Manager, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	return g.manager()
}

// startVessel creates a vessel pod: housed if it can be.
func (g *globalOptions) startVessel(ctx context.Context, o vesselpod.CreateOptions, module []byte) (any, error) {
	m, err := g.housing()
	if err != nil {
		return nil, err
	}
	return housed.CreateVessel(ctx, m, g.vessels(), o, module)
}

// open finds the pod name, whatever its kind (see housed.Open).
func (g *globalOptions) open(name string) (handle.Pod, error) {
	return housed.Open(g.vessels(), name, g.manager)
}

// execer is a pod with processes to run a command in.
type execer interface {
	Exec(ctx context.Context, o pod.ExecOptions) (int, error)
}
