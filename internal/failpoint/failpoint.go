//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
)

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
