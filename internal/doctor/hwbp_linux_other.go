//go:build linux && !amd64

package doctor

import (
	"context"
	"runtime"
)

// checkHWBreakpoints reports "n/a": the probe programs x86-64 debug
// registers, and the CRIU problem it detects concerns x86-64 only.
func (r *runner) checkHWBreakpoints(context.Context) []Check {
	return []Check{informational("hardware breakpoints", "n/a (probe is amd64 only; GOARCH="+runtime.GOARCH+")", "")}
}
