// Package failpoint lets end-to-end tests kill podctl at a named step, to
// check that whatever a crash leaves behind is finished or rolled back by
// the next command. A failpoint is armed by setting PODCTL_FAILPOINT to its
// name in podctl's environment; unarmed, Hit costs one environment lookup.
//
// Armed as "pause:" and its name instead, a failpoint holds the step
// forever rather than crashing: a test can then act on the other side of
// a migration (interrupt it, say) at a moment it knows.
package failpoint

import (
	"fmt"
	"os"
)

// EnvVar names the environment variable that arms a failpoint.
const EnvVar = "PODCTL_FAILPOINT"

// PausePrefix arms a failpoint that pauses instead of killing.
const PausePrefix = "pause:"

// Hit kills the process (SIGKILL on Unix), as abruptly as a crash or an
// OOM kill would, when the failpoint name is armed. Armed with
// PausePrefix, it says so on standard error ("failpoint: paused at NAME")
// and blocks the calling goroutine for good.
func Hit(name string) {
	if os.Getenv(EnvVar) == PausePrefix+name {
		fmt.Fprintf(os.Stderr, "failpoint: paused at %s\n", name)
		select {}
	}
	if os.Getenv(EnvVar) == name {
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			p.Kill()
		}
		select {} // a kill is not catchable; never proceed
	}
}

// Armed reports whether the failpoint name is armed, for faults other
// than a crash (a cut connection, corrupt data) that the caller injects
// itself.
func Armed(name string) bool { return os.Getenv(EnvVar) == name }
