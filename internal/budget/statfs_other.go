//go:build !(linux || darwin || freebsd)

package budget

import "errors"

// available is not known here.
func available(string) (int64, error) { return 0, errors.New("no statfs") }
