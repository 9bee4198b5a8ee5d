package snapshot

import "github.com/podctl/podctl/internal/size"

// Limits bounds what Decode accepts, so that a hostile or corrupt snapshot
// cannot make it allocate more than the caller allows. A zero or negative
// field means the default (DefaultLimits).
//
// Every size is checked against its limit before anything is allocated for
// it. Linear memory is the one thing a small input can legitimately make
// Decode allocate in full, since its zero pages are not stored: a snapshot
// of MaxMemoryBytes of zeros is a few hundred bytes long.
type Limits struct {
	// MaxMemoryBytes is the largest linear memory accepted.
	MaxMemoryBytes int64
	// MaxModuleBytes is the largest embedded module accepted.
	MaxModuleBytes int64
	// MaxFileBytes is the most file data accepted: the contents of every
	// regular file and the targets of every symbolic link in all the
	// preopens, plus the stdout and stderr logs.
	MaxFileBytes int64
	// MaxEntries is the most entries accepted, counting together the
	// meta entries, the globals, the arguments, the environment
	// variables, the preopens, the files in them and the descriptors.
	MaxEntries int
	// MaxStringBytes is the longest string accepted: a meta key or
	// value, an argument, an environment variable, a preopen's guest
	// path, a file or descriptor path.
	MaxStringBytes int
}

// DefaultLimits returns the limits podctl decodes snapshots with: 4 GiB of
// memory (the wasm32 maximum), a 256 MiB module, 1 GiB of file data,
// 1<<20 entries and 64 KiB strings.
func DefaultLimits() Limits {
	return Limits{
		MaxMemoryBytes: MaxPages * PageSize,
		MaxModuleBytes: 256 << 20,
		MaxFileBytes:   1 << 30,
		MaxEntries:     1 << 20,
		MaxStringBytes: 64 << 10,
	}
}

// withDefaults returns l with every unset field set to its default.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	l.MaxMemoryBytes = size.OrDefault(l.MaxMemoryBytes, d.MaxMemoryBytes)
	l.MaxModuleBytes = size.OrDefault(l.MaxModuleBytes, d.MaxModuleBytes)
	l.MaxFileBytes = size.OrDefault(l.MaxFileBytes, d.MaxFileBytes)
	l.MaxEntries = size.OrDefault(l.MaxEntries, d.MaxEntries)
	l.MaxStringBytes = size.OrDefault(l.MaxStringBytes, d.MaxStringBytes)
	return l
}
