//go:build failpoints

package failpoint

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// Hit acts on the failpoint name when it is armed, and does nothing
// otherwise:
//   - armed as name, it kills the process (SIGKILL on Unix), as abruptly
//     as a crash or an OOM kill would;
//   - armed with PausePrefix, it says so on standard error ("failpoint:
//     paused at NAME") and blocks the calling goroutine for good;
//   - armed with HoldPrefix, it says so ("failpoint: holding at NAME")
//     and returns once ctx is done: the process goes on as if a Ctrl-C
//     had come at that step.
func Hit(ctx context.Context, name string) {
	switch os.Getenv(EnvVar) {
	case name:
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			p.Kill()
		}
		select {} // a kill is not catchable; never proceed
	case PausePrefix + name:
		fmt.Fprintf(os.Stderr, "failpoint: paused at %s\n", name)
		select {}
	case HoldPrefix + name:
		fmt.Fprintf(os.Stderr, "failpoint: holding at %s\n", name)
		<-ctx.Done()
	}
}

// Armed reports whether the failpoint name is armed, for faults other
// than a crash (a cut connection, corrupt data) that the caller injects
// itself.
func Armed(name string) bool { return os.Getenv(EnvVar) == name }

// Value returns what follows prefix in the armed failpoint, for faults
// that take an argument (a script CRIU runs at its steps, say); ok is
// false when no failpoint with that prefix is armed.
func Value(prefix string) (value string, ok bool) {
	return strings.CutPrefix(os.Getenv(EnvVar), prefix)
}
