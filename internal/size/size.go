// Package size parses human-friendly byte sizes ("256m", "1g").
package size

import (
	"strconv"
	"strings"

	"github.com/podctl/podctl/internal/errdefs"
)

// Parse reads a positive byte count with an optional k, m, g or t suffix
// (powers of 1024; "kb", "kib" and friends are accepted too).
func Parse(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, errdefs.New(errdefs.InvalidArgument, "invalid size %q: want a positive number of bytes with an optional k, m or g suffix", s)
	}
	return n * mult, nil
}

// OrDefault returns limit if it is positive, else def: how every
// podctl limit left zero (or set negative) takes its default.
func OrDefault[T ~int | ~int64](limit, def T) T {
	if limit > 0 {
		return limit
	}
	return def
}
