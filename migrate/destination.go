package migrate

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"

	"github.com/podctl/podctl/dock"
	"github.com/podctl/podctl/pod/vesselpod"
)

// Destination is this host as a dock: the receivers of native pods and
// of vessels, and what must be recovered before either receives anything.
type Destination struct {
	// Pods receives native pods (nil: this dock takes vessels only).
	Pods dock.PodReceiver
	// Vessels keeps the vessels this dock receives.
	Vessels VesselHost

	recovery []recoveryStep
	// guard, if set, keeps this host's pods off the dock's port until the
	// function it returns is called.
	guard func(ctx context.Context, port uint16) (lift func() error, err error)
}

// recoveryStep finishes what a dock that died left half received, in
// one of the stores a dock writes to.
type recoveryStep struct {
	what string
	run  func(context.Context) error
}

// VesselDestination is a dock for vessels only, kept in store: the dock
// of a build without the namespace layer, or of a podctl that is not
// root.
func VesselDestination(store vesselpod.Store) *Destination {
	return &Destination{
		Vessels:  PlainVessels{Store: store},
		recovery: []recoveryStep{{"vessel pods", store.Recover}},
	}
}

// Serve recovers what a dock that died left half received, then serves
// migrations on ln until ctx ends. The caller binds ln first, so that a
// second dock on the same port fails before it touches any state.
// Recovery goes in order and stops at the first failure, closing ln.
// Connections wait in ln's backlog meanwhile; the log line "dock ready"
// says when they are served.
func (d *Destination) Serve(ctx context.Context, ln net.Listener, tlsConfig *tls.Config, log *slog.Logger) error {
	for _, step := range d.recovery {
		if err := step.run(ctx); err != nil {
			ln.Close()
			return fmt.Errorf("dock: recover %s: %w", step.what, err)
		}
	}
	if d.guard != nil {
		port := uint16(0)
		if a, ok := ln.Addr().(*net.TCPAddr); ok {
			port = uint16(a.Port)
		}
		lift, err := d.guard(ctx, port)
		if err != nil {
			ln.Close()
			return fmt.Errorf("dock: keep pods off port %d: %w", port, err)
		}
		defer func() {
			if err := lift(); err != nil {
				log.Error("dock: lift the guard of its port", "err", err)
			}
		}()
	}
	log.Info("dock ready", "addr", ln.Addr().String(), "native", d.Pods != nil)
	s := &dock.Server{Pods: d.Pods, Vessels: VesselReceiver{Host: d.Vessels}, TLS: tlsConfig, Log: log}
	return s.Serve(ctx, ln)
}
