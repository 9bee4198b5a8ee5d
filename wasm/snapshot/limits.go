package snapshot

import (
	"math"

	"github.com/podctl/podctl/internal/size"
)

// Limits bounds what Decode accepts, so that a hostile or corrupt snapshot
// cannot make it allocate more than the caller allows. A zero or negative
// field means the default (DefaultLimits; the defaults of MaxRecordBytes
// and MaxTotalBytes derive from the other fields).
//
// Every size is checked against its limit before anything is allocated for
// it. Linear memory is the one thing a small input can legitimately make
// Decode allocate in full, since its zero pages are not stored: a snapshot
// of MaxMemoryBytes of zeros is a few hundred bytes long. Anything else
// Decode allocates only as the bytes of the body that hold it arrive, but
// the body is compressed: a few KiB of it can hold hundreds of MiB of
// strings. MaxRecordBytes and MaxTotalBytes are what bound those.
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
	// MaxRecordBytes is the most memory accepted for the entries and
	// their strings: each entry counts its size in memory (a File, an FD,
	// a string header...), each string its bytes. MaxEntries and
	// MaxStringBytes alone would let the strings take MaxEntries times
	// MaxStringBytes (64 GiB by default). The default allows, per entry
	// of MaxEntries, the size of the largest entry (an FD: 64 bytes on a
	// 64-bit host), strings included.
	MaxRecordBytes int64
	// MaxTotalBytes is the budget of one snapshot: the most Decode
	// allocates for it from the sizes and counts in its input, all told
	// (linear memory and its table of runs, the module, file data,
	// entries and strings), each charged before it is allocated (and
	// reserved, by DecodeReserving). Decode's own fixed buffers
	// (DecodeBuffers, mostly the zstd window) come on top, and so may up
	// to as much again, as garbage, while a byte string or a list of
	// entries grows as its bytes arrive. The default is the sum of what
	// the other limits allow, so that it binds only when set.
	MaxTotalBytes int64
}

// recordBytesPerEntry is MaxRecordBytes' default per entry of MaxEntries:
// the size in memory of an FD, the largest entry.
const recordBytesPerEntry = int64(fdSize)

// DefaultLimits returns the limits podctl decodes snapshots with: 4 GiB of
// memory (the wasm32 maximum), a 256 MiB module, 1 GiB of file data,
// 1<<20 entries, 64 KiB strings, 64 MiB of entries and strings (on a 64-bit
// host), and a total budget of their sum (about 5.3 GiB).
func DefaultLimits() Limits {
	return Limits{}.withDefaults()
}

// withDefaults returns l with every unset field set to its default.
func (l Limits) withDefaults() Limits {
	l.MaxMemoryBytes = size.OrDefault(l.MaxMemoryBytes, MaxPages*PageSize)
	l.MaxModuleBytes = size.OrDefault(l.MaxModuleBytes, 256<<20)
	l.MaxFileBytes = size.OrDefault(l.MaxFileBytes, 1<<30)
	l.MaxEntries = size.OrDefault(l.MaxEntries, 1<<20)
	l.MaxStringBytes = size.OrDefault(l.MaxStringBytes, 64<<10)
	l.MaxRecordBytes = size.OrDefault(l.MaxRecordBytes, satMul(int64(l.MaxEntries), recordBytesPerEntry))
	l.MaxTotalBytes = size.OrDefault(l.MaxTotalBytes, satAdd(
		l.MaxMemoryBytes, satMul(l.MaxMemoryBytes/PageSize, int64(runMemSize)),
		l.MaxModuleBytes, l.MaxFileBytes, l.MaxRecordBytes))
	return l
}

// satAdd returns the sum of non-negative values, or math.MaxInt64 if it
// overflows.
func satAdd(vs ...int64) int64 {
	var sum int64
	for _, v := range vs {
		if v > math.MaxInt64-sum {
			return math.MaxInt64
		}
		sum += v
	}
	return sum
}

// satMul returns a*b for non-negative values, or math.MaxInt64 if it
// overflows.
func satMul(a, b int64) int64 {
	if b != 0 && a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}
