package wasi

import (
	"context"

	"github.com/tetratelabs/wazero/api"
)

// argsGet is args_get.
func (s *System) argsGet(_ context.Context, mod api.Module, p []uint64) errno {
	return writeStrings(mod.Memory(), s.args, uint32(p[0]), uint32(p[1]))
}

// argsSizesGet is args_sizes_get.
func (s *System) argsSizesGet(_ context.Context, mod api.Module, p []uint64) errno {
	return writeSizes(mod.Memory(), s.args, uint32(p[0]), uint32(p[1]))
}

// environGet is environ_get.
func (s *System) environGet(_ context.Context, mod api.Module, p []uint64) errno {
	return writeStrings(mod.Memory(), s.env, uint32(p[0]), uint32(p[1]))
}

// environSizesGet is environ_sizes_get.
func (s *System) environSizesGet(_ context.Context, mod api.Module, p []uint64) errno {
	return writeSizes(mod.Memory(), s.env, uint32(p[0]), uint32(p[1]))
}

// stringsSize returns the bytes list takes as NUL-terminated strings.
// New and Restore keep it below 4 GiB.
func stringsSize(list []string) uint32 {
	var n uint32
	for _, v := range list {
		n += uint32(len(v)) + 1
	}
	return n
}

// writeSizes writes the number of strings in list at countPtr and the
// bytes they take at sizePtr.
func writeSizes(mem api.Memory, list []string, countPtr, sizePtr uint32) errno {
	if !mem.WriteUint32Le(countPtr, uint32(len(list))) || !mem.WriteUint32Le(sizePtr, stringsSize(list)) {
		return errnoFault
	}
	return errnoSuccess
}

// writeStrings writes list as NUL-terminated strings at buf, and their
// addresses at ptrs.
func writeStrings(mem api.Memory, list []string, ptrs, buf uint32) errno {
	ptrBytes, ok := mem.Read(ptrs, uint32(len(list))*4)
	if !ok {
		return errnoFault
	}
	data, ok := mem.Read(buf, stringsSize(list))
	if !ok {
		return errnoFault
	}
	pos := uint32(0)
	for i, v := range list {
		putUint32(ptrBytes[i*4:], buf+pos)
		pos += uint32(copy(data[pos:], v))
		data[pos] = 0
		pos++
	}
	return errnoSuccess
}

// putUint32 writes v little-endian at the start of b.
func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}
