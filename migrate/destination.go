package migrate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/podctl/podctl/dock"
	"github.com/podctl/podctl/internal/budget"
	"github.com/podctl/podctl/internal/human"
	"github.com/podctl/podctl/pod/handle"
	"github.com/podctl/podctl/pod/vesselpod"
)

// Destination is this host as a dock: the receivers of native pods and
// of vessels, and what must be recovered before either receives anything.
type Destination struct {
	// Pods receives native pods (nil: this dock takes vessels only).
	Pods dock.PodReceiver
	// Vessels keeps the vessels this dock receives.
	Vessels VesselHost
	// Budgets bound what the dock holds for its peers at once.
	Budgets Budgets

	// store is the host's vessel store, whose module cache the dock keeps
	// within its share of the disk budget (no Root: none).
	store    vesselpod.Store
	recovery []recoveryStep
	// guard, if set, keeps this host's pods off the dock's port until the
	// function it returns is called.
	guard func(ctx context.Context, port uint16) (lift func() error, err error)
	// findSession finds the pod a migration session brought here (nil:
	// none).
	findSession func(session string) (handle.Pod, error)
}

// leftovers is a recovery error that quarantines what it could not clean
// up and lets the dock serve (pod.LeftoverError).
type leftovers interface {
	error
	Leftovers() []error
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
		store:    store,
		recovery: []recoveryStep{{"vessel pods", store.Recover}},
		findSession: func(session string) (handle.Pod, error) {
			return plainSessionPod(store, session)
		},
	}
}

// Budgets bound what a dock holds for its peers at once, whatever they
// send and however many send at once (see ARCHITECTURE.md, "A dock's
// budgets").
type Budgets struct {
	// Memory is the most memory all receives in progress may allocate
	// together, in bytes (0: budget.DefaultMemory(), a quarter of the
	// machine's).
	Memory int64
	// Disk is the most disk space the dock fills on its peers' behalf,
	// in bytes (0: budget.DefaultDisk of the state root, half its free
	// space): what receives in progress stage, and the module cache,
	// which keeps a quarter of it (ModuleCacheShare).
	Disk int64
	// Wait is how long a receive waits for others to release what it
	// needs before it is refused as busy (0: budget.DefaultWait).
	Wait time.Duration
}

// ModuleCacheShare is the part of the disk budget the module cache keeps
// (1/ModuleCacheShare): received modules stay there for the next
// migration of the same program, which then does not carry its module,
// while the rest stays free for what receives stage.
const ModuleCacheShare = 4

// resolve returns b with its defaults filled in, for a dock whose state
// is under root.
func (b Budgets) resolve(root string) Budgets {
	if b.Memory <= 0 {
		b.Memory = budget.DefaultMemory()
	}
	if b.Disk <= 0 {
		b.Disk = budget.DefaultDisk(root)
	}
	return b
}

// Serve recovers what a dock that died left half received, then serves
// migrations on ln until ctx ends. The caller binds ln first, so that a
// second dock on the same port fails before it touches any state.
// Recovery goes in order and stops at the first failure, closing ln,
// except for leftovers it cannot clean up (pod.LeftoverError), which it
// logs and leaves quarantined.
// Connections wait in ln's backlog meanwhile; the log line "dock ready"
// says when they are served.
func (d *Destination) Serve(ctx context.Context, ln net.Listener, tlsConfig *tls.Config, log *slog.Logger) error {
	for _, step := range d.recovery {
		err := step.run(ctx)
		if leftover, ok := errors.AsType[leftovers](err); ok {
			// Quarantined: the dock serves, and the next recovery
			// tries again.
			log.Warn("dock: leftovers of a crash cannot be cleaned up; they keep their names and addresses until they can", "what", step.what, "err", leftover)
			continue
		}
		if err != nil {
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
	s, b := d.server(tlsConfig, log)
	log.Info("dock ready", "addr", ln.Addr().String(), "native", d.Pods != nil,
		"memoryBudget", human.Bytes(b.Memory), "diskBudget", human.Bytes(b.Disk))
	return s.Serve(ctx, ln)
}

// server assembles the dock with its budgets (returned with their
// defaults filled in) and its module cache keeper, which it trims to its
// share of the disk budget first.
func (d *Destination) server(tlsConfig *tls.Config, log *slog.Logger) (*dock.Server, Budgets) {
	b := d.Budgets.resolve(d.store.Root)
	staging := b.Disk
	recv := VesselReceiver{Host: d.Vessels}
	if d.store.Root != "" {
		share := b.Disk / ModuleCacheShare
		staging -= share
		recv.Modules = vesselpod.NewModuleCache(d.store, share)
		if err := recv.Modules.Trim(); err != nil {
			log.Warn("dock: trim the module cache", "err", err)
		}
	}
	return &dock.Server{
		Pods: d.Pods, Vessels: recv, Sessions: d, TLS: tlsConfig, Log: log,
		Memory: budget.New("memory", "--memory-budget", b.Memory, b.Wait),
		Disk:   budget.New("staging", "three quarters of --disk-budget; the module cache has the rest", staging, b.Wait),
	}, b
}
