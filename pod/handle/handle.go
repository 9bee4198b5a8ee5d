// Package handle is the seam between podctl's commands and the kinds of
// pod. A native pod (pod.Manager.Handle), a vessel pod
// (vesselpod.Store.Handle) and a vessel housed in a native pod
// (housed.Handle) are each a Pod, and housed.Open finds the right one by
// name: the CLI and package migrate ask a pod to show, stop, remove,
// checkpoint or restore itself without asking what it is.
//
// The package imports nothing of podctl's and its methods use only
// standard types, so that every build has it, the vessel-only builds of
// other ISAs included, and vesselpod implements it without the namespace
// layer.
package handle

import (
	"context"
	"io"
	"time"
)

// Kind is what a pod runs, which decides the routes open to it when it
// migrates.
type Kind string

const (
	// Native is any Linux program in a native pod: it moves through
	// CRIU, to a dock of this ISA only.
	Native Kind = "native"
	// Vessel is a Wasm vessel pod not housed in a native pod (made by a
	// podctl that is not root): it moves as a portable snapshot only.
	Vessel Kind = "vessel"
	// Housed is a Wasm vessel housed in a native pod: through CRIU to a
	// dock of this ISA, as a portable snapshot to any dock.
	Housed Kind = "housed"
)

// Pod is one pod, whatever it runs.
type Pod interface {
	// Name is the pod's name.
	Name() string
	// Kind is what the pod runs.
	Kind() Kind
	// Inspect returns everything about the pod, for JSON.
	Inspect(ctx context.Context) (any, error)
	// Logs writes the payload's standard output, then its standard
	// error; with follow, it keeps writing until the payload ends.
	Logs(ctx context.Context, follow bool, w io.Writer) error
	// Stop ends the payload, giving it timeout to end by itself where it
	// can take a signal.
	Stop(ctx context.Context, timeout time.Duration) error
	// Remove removes the pod and everything it has; force ends it first
	// if it runs.
	Remove(ctx context.Context, force bool) error
	// Checkpoint writes the running pod to an archive or snapshot.
	Checkpoint(ctx context.Context, o CheckpointOptions) (Report, error)
	Restorer
}

// Restorer is what `podctl restore` restores: a checkpointed pod, or a
// file holding one.
type Restorer interface {
	// Restore restarts the pod where it was checkpointed.
	Restore(ctx context.Context, o RestoreOptions) (Report, error)
}

// CheckpointOptions tune Pod.Checkpoint.
type CheckpointOptions struct {
	// Output is where the archive or snapshot goes; empty keeps it with
	// the pod, which is then left checkpointed, ready for Restore.
	Output string
	// LeaveRunning lets the pod carry on once it is written.
	LeaveRunning bool
	// Compression is a CRIU archive's: "zstd" (empty) or "none".
	Compression string
	// Portable asks for a vessel's portable snapshot, which any ISA can
	// restore, rather than a CRIU archive.
	Portable bool
}

// RestoreOptions tune Restorer.Restore.
type RestoreOptions struct {
	// Name renames the restored pod (empty: keep its name).
	Name string
	// Force restores CRIU images even when this host's CPU lacks
	// features the checkpointed processes may use.
	Force bool
	// MemoryLimit caps a restored vessel's memory; a snapshot with more
	// is refused (0: no cap of the user's).
	MemoryLimit int64
}

// Report is what a checkpoint or restore did: it marshals to JSON as the
// kind of pod words it, and String says it in one line for a person.
type Report interface {
	String() string
}

// Handover records where a migration handed a pod over: to the dock that
// holds it until the source's commit (see ARCHITECTURE.md, "The commit
// point"). A source that dies before the dock confirms keeps the pod
// stopped under this record, and its next podctl asks the dock again.
type Handover struct {
	// Dock is the destination's address, Session the migration's.
	Dock    string `json:"dock"`
	Session string `json:"session"`
	// PKI and Cert are the directory and name of the certificate this
	// host reached the dock with, to reach it again.
	PKI  string `json:"pki,omitempty"`
	Cert string `json:"cert,omitempty"`
}

// HandoverResolver asks a dock about a pod handed over to it: ran is true
// once the dock runs the pod (it has committed it now, or had before),
// false if the dock has no such pod (the pod may run here again). An
// error leaves the question for the next recovery.
type HandoverResolver func(ctx context.Context, h Handover) (ran bool, err error)
