//go:build unix

package vesselpod

import (
	"os/exec"
	"syscall"
)

// detach makes cmd a session leader of its own, so that it outlives the
// podctl command that starts it and no terminal signal reaches it.
func detach(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} }
