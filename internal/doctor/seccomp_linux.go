//go:build linux

package doctor

import (
	"context"

	"github.com/opencontainers/runc/libcontainer/seccomp"
)

// checkSeccomp fails a podctl built without seccomp: its pods would run
// without the filter every pod must have (see virtns.SeccompEnforced).
func checkSeccomp(context.Context) []Check {
	const name = "seccomp"
	if !seccomp.Enabled {
		return []Check{failed(name, true, "this podctl was built without seccomp: its pods would run unconfined",
			"build it with make build (cgo, tag \"seccomp\", libseccomp-dev)")}
	}
	return []Check{passed(name, true, "pods run with the default seccomp profile")}
}
