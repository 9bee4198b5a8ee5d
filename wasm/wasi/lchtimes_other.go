//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package wasi

import (
	"errors"
	"os"
	"time"
)

// lchtimes would set the times of name in root without following a final
// symlink; this host cannot.
func lchtimes(_ *os.Root, name string, _, _ time.Time) error {
	return &os.PathError{Op: "lchtimes", Path: name, Err: errors.ErrUnsupported}
}
