//go:build !linux

package dock

import (
	"io"
	"os"

	"github.com/podctl/podctl/internal/errdefs"
)

// socketPair fails: page tunnels join CRIU helpers, which only Linux has.
func socketPair() (ours, theirs *os.File, err error) {
	return nil, nil, errdefs.New(errdefs.Unsupported, "page tunnels need Linux (CRIU)")
}

// shutdownWrite ends the sending side of c, if it has one of its own.
func shutdownWrite(c io.Closer) {
	if h, ok := c.(halfCloser); ok {
		h.CloseWrite()
	}
}
