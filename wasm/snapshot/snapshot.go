// Package snapshot is the portable snapshot of a WebAssembly vessel: the
// complete execution state of a prepared WASI module, stopped at one of its
// poll points, in a form that means the same on every host whatever its
// CPU, byte order, word size, operating system or Wasm engine.
//
// A vessel is stopped by unwinding its call stack with Binaryen's Asyncify
// into a buffer in its own linear memory (see package wasm/prepare). After
// that, linear memory, the globals and the state of the virtualized system
// interface are all there is: Snapshot holds exactly these, and Encode and
// Decode turn it into bytes and back. docs/snapshot-format.md specifies the
// encoding.
package snapshot

// Version is the format version Encode writes and Decode reads.
const Version = 1

// PageSize is the size of a WebAssembly linear memory page.
const PageSize = 65536

// Snapshot is a vessel's complete execution state.
type Snapshot struct {
	// ModuleHash is the SHA-256 of the prepared module's bytes: a
	// snapshot resumes only in the very module it was taken from, since
	// the unwound stack refers to its code.
	ModuleHash [32]byte
	// Module is the prepared module itself, or nil when the destination
	// already has it (its hash is ModuleHash).
	Module []byte
	// Memory is linear memory, a whole number of pages.
	Memory []byte
	// Globals holds every global the module defines, in index order
	// (imported globals are not included).
	Globals []Global
	// Stack locates the unwound call stack in Memory.
	Stack Stack
	// WASI is the state of the virtualized system interface.
	WASI WASIState
	// Meta holds string annotations about the vessel that are not part
	// of its execution state (its pod's name, say), like OCI
	// annotations. Keys are namespaced by the writer ("podctl.pod.name").
	Meta map[string]string
}

// ValueType is a WebAssembly value type, with its binary-format code.
type ValueType uint8

// The value types a global can have.
const (
	I32 ValueType = 0x7f
	I64 ValueType = 0x7e
	F32 ValueType = 0x7d
	F64 ValueType = 0x7c
)

// Global is a global's type and value. Value holds the raw bits: an i32
// or f32 in the low 32 bits (the rest zero), an i64 or f64 in all 64.
type Global struct {
	Type  ValueType
	Value uint64
}

// Stack locates the call stack Asyncify unwound into linear memory.
type Stack struct {
	// DataAddr is the address in Memory of Asyncify's data structure:
	// two little-endian 32-bit pointers, the current position and the
	// end of the buffer holding the unwound frames. Rewinding starts
	// from it.
	DataAddr uint32
	// Start and End delimit that buffer in Memory.
	Start, End uint32
}

// WASIState is what the virtualized WASI preview 1 interface holds on the
// guest's behalf. Everything a guest can observe through it is here, so
// that it observes the same after a move (except realtime, which is the
// destination's).
type WASIState struct {
	// Args and Env are the guest's arguments and environment ("K=V").
	Args, Env []string
	// MonotonicNanos is the guest's monotonic clock when the snapshot
	// was taken; a restored guest's monotonic clock continues from it,
	// so it never goes backwards.
	MonotonicNanos uint64
	// Stdout and Stderr are everything the guest has written to them:
	// the vessel pod's logs, which move with it.
	Stdout, Stderr []byte
	// Preopens are the preopened directories, with their contents.
	Preopens []Preopen
	// FDs is the descriptor table: every open descriptor other than the
	// standard ones and the preopens, in ascending order.
	FDs []FD
	// NextFD is the next descriptor number the table hands out, so that
	// descriptor numbers after a move are those the guest would have had.
	NextFD uint32
}

// Preopen is a preopened directory.
type Preopen struct {
	// FD is its descriptor number.
	FD uint32
	// GuestPath is the name the guest knows it by (fd_prestat_dir_name).
	GuestPath string
	// Files is its contents, every entry below it, parents first.
	Files []File
}

// FileType is the type of a File.
type FileType uint8

// The file types a preopened directory may contain. Anything else (a
// device, a socket, a FIFO) cannot move, and a snapshot of a directory
// holding one fails.
const (
	Regular FileType = iota + 1
	Directory
	Symlink
)

// File is one entry of a preopened directory.
type File struct {
	// Path is slash-separated and relative to the preopen: no leading
	// slash, no "." or ".." elements, no empty elements.
	Path string
	Type FileType
	// Mode holds the permission bits (0o7777 at most).
	Mode uint32
	// ModTimeNanos is the modification time, in nanoseconds since the
	// Unix epoch.
	ModTimeNanos int64
	// Data is a regular file's contents or a symlink's target.
	Data []byte
}

// FDKind is what an open descriptor refers to.
type FDKind uint8

// The kinds of descriptor a snapshot can hold.
const (
	KindFile FDKind = iota + 1
	KindDir
)

// FD is an open descriptor: a file or directory below a preopen,
// reopened by path on restore.
type FD struct {
	// FD is its number.
	FD   uint32
	Kind FDKind
	// Preopen is the descriptor number of the preopen it lies under, and
	// Path its path relative to that preopen (as File.Path; "" is the
	// preopen itself).
	Preopen uint32
	Path    string
	// Offset is the file position.
	Offset uint64
	// Flags are the WASI fdflags (append, dsync, nonblock, rsync, sync).
	Flags uint16
	// Read and Write say whether it was opened for reading, for writing.
	Read, Write bool
	// RightsBase and RightsInheriting are the WASI rights it was opened with.
	RightsBase, RightsInheriting uint64
}
