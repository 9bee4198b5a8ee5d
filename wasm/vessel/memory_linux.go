package vessel

import (
	"unsafe"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// reservedMemory backs a guest's linear memory with one reservation of
// its maximum size, of which only what the guest has grown is made
// accessible: growing never moves or copies memory. wazero's default
// reallocates and copies the whole memory whenever it outgrows its
// capacity, which a stop pays when it grows a stack buffer: some 450 ms
// of time-to-safepoint for a 56 MiB heap.
type reservedMemory struct {
	mem  []byte // the whole reservation
	used int    // bytes made accessible
}

// MemoryAllocator returns the allocator vessels give wazero, or nil for
// wazero's own (benchmarks give unprepared modules the same, to compare
// like with like).
func MemoryAllocator() experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(cap, max uint64) experimental.LinearMemory {
		if max == 0 || max > 1<<32 {
			max = 1 << 32
		}
		b, err := unix.Mmap(-1, 0, int(max), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
		if err != nil {
			// No address space for it (a ulimit, say): memory that is
			// copied as it grows, as wazero's own.
			return &copiedMemory{}
		}
		return &reservedMemory{mem: b}
	})
}

// Reallocate makes the first size bytes accessible (zeroed, as fresh
// anonymous memory is) and returns them.
func (r *reservedMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(r.mem)) {
		return nil
	}
	page := uint64(unix.Getpagesize())
	want := int((size + page - 1) / page * page)
	if want > r.used {
		if err := unix.Mprotect(r.mem[r.used:want], unix.PROT_READ|unix.PROT_WRITE); err != nil {
			return nil
		}
		r.used = want
	}
	return unsafe.Slice(&r.mem[0], len(r.mem))[:size:size]
}

// Free releases the reservation.
func (r *reservedMemory) Free() {
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem = nil
	}
}

// copiedMemory is a Go slice reallocated (and copied) as it grows: the
// fallback when the reservation cannot be made.
type copiedMemory struct{ buf []byte }

func (c *copiedMemory) Reallocate(size uint64) []byte {
	if uint64(cap(c.buf)) < size {
		grown := make([]byte, size, size+size/2)
		copy(grown, c.buf)
		c.buf = grown
	}
	c.buf = c.buf[:size]
	return c.buf
}

func (c *copiedMemory) Free() { c.buf = nil }
