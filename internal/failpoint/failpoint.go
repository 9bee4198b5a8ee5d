// Package failpoint lets end-to-end tests kill podctl at a named step, to
// check that whatever a crash leaves behind is finished or rolled back by
// the next command. A failpoint is armed by setting PODCTL_FAILPOINT to its
// name in podctl's environment; unarmed, Hit costs one environment lookup.
package failpoint

import "os"

// EnvVar names the environment variable that arms a failpoint.
const EnvVar = "PODCTL_FAILPOINT"

// Hit kills the process (SIGKILL on Unix), as abruptly as a crash or an
// OOM kill would, when the failpoint name is armed.
func Hit(name string) {
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
