//go:build !linux

package budget

import "errors"

// memTotal is not known without /proc/meminfo.
func memTotal() (int64, error) { return 0, errors.New("no /proc/meminfo") }
