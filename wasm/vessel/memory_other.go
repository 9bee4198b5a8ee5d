//go:build !linux

package vessel

import "github.com/tetratelabs/wazero/experimental"

// MemoryAllocator returns nil: wazero's own allocator, which copies
// memory when it outgrows its capacity.
func MemoryAllocator() experimental.MemoryAllocator { return nil }
