//go:build !unix

package vesselpod

import "os/exec"

// detach leaves cmd as it is: where there are no sessions, a child
// already outlives its parent.
func detach(*exec.Cmd) {}
