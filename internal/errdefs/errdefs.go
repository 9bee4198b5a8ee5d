// Package errdefs classifies podctl errors so that the CLI can map each class
// of failure to its own exit status, the way containerd's errdefs maps errors
// to gRPC codes. An error keeps its message and cause; the class travels with
// it through wrapping (fmt.Errorf("...: %w", err)).
package errdefs

import (
	"errors"
	"fmt"
)

// Kind is a class of failure. Each Kind has a distinct exit status.
type Kind int

// The kinds of failure podctl distinguishes. Their numeric values are the
// process exit statuses the CLI returns, so they must never be renumbered.
const (
	// Internal is anything not classified below.
	Internal Kind = 1
	// Usage is a malformed command line: a missing command, an unknown flag.
	Usage Kind = 2
	// InvalidName is a pod or network name that does not match the naming rule.
	InvalidName Kind = 3
	// InvalidPort is a malformed port publication spec.
	InvalidPort Kind = 4
	// NotFound is an unknown pod or network.
	NotFound Kind = 5
	// AlreadyExists is a name that is already taken.
	AlreadyExists Kind = 6
	// Conflict is a resource held by someone else: a published port, an address.
	Conflict Kind = 7
	// InvalidImage is an image that is not a root filesystem.
	InvalidImage Kind = 8
	// NotRoot means podctl was not run with root privileges.
	NotRoot Kind = 9
	// Unsupported is a missing kernel feature or tool (CRIU, overlayfs, ...).
	Unsupported Kind = 10
	// InvalidArgument is any other malformed value: a memory size, an env pair.
	InvalidArgument Kind = 11
	// Busy is a pod that another podctl command is operating on.
	Busy Kind = 12
	// NotRunning is an operation that needs a running pod on a stopped one.
	NotRunning Kind = 13
	// CommandNotExecutable is a command found in the pod but not executable
	// (126, as a shell reports it).
	CommandNotExecutable Kind = 126
	// CommandNotFound is a command that does not exist in the pod
	// (127, as a shell reports it).
	CommandNotFound Kind = 127
	// Interrupted is a command stopped by a Ctrl-C or a SIGTERM, having
	// undone what it had started (130, as a shell reports a SIGINT).
	Interrupted Kind = 130
)

// Error is an error with a Kind.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// New returns an error of kind k with a formatted message. Like fmt.Errorf,
// %w in the format wraps an error.
func New(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Err: fmt.Errorf(format, args...)}
}

// KindOf returns the Kind of the outermost classified error in err's chain,
// or Internal when there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err is classified as kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }
