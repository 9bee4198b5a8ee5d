package snapshot

import (
	"crypto/sha256"
	"io"
)

// MaxPages is the most pages a wasm32 linear memory can have: 4 GiB.
const MaxPages = 65536

// Magic is the first eight bytes of every encoded snapshot.
const Magic = "PODCTLWS"

// The layout of an encoded snapshot (docs/snapshot-format.md):
//
//	offset  size  field
//	0       8     magic "PODCTLWS"
//	8       4     format version, uint32
//	12      32    module hash
//	44      8     body length B (uncompressed), uint64
//	52      8     compressed body length C, uint64
//	60      C     body, compressed with zstd
//	60+C    32    SHA-256 of bytes 0 to 60+C
//
// Every integer is little-endian.
const (
	versionOffset  = len(Magic)
	hashOffset     = versionOffset + 4
	bodyLenOffset  = hashOffset + sha256.Size
	compLenOffset  = bodyLenOffset + 8
	headerSize     = compLenOffset + 8
	checksumSize   = sha256.Size
	maxFieldLength = 1<<63 - 1 // B and C must fit an int64
)

// maxWindow is the largest zstd window a writer may use and a reader
// accepts: 8 MiB, what RFC 8878 recommends every decoder support.
const maxWindow = 8 << 20

// writeWindow is the zstd window Encode uses.
const writeWindow = 4 << 20

// The smallest encoding of each kind of record, in bytes: Decode refuses
// a count of records that cannot fit in what is left of the body before
// it allocates anything for them.
const (
	minString  = 4                                         // length
	minMeta    = minString + minString                     // key, value
	minGlobal  = 1 + 4                                     // type, i32 or f32 value
	minPreopen = 4 + minString + 4                         // fd, guest path, file count
	minFile    = minString + 1 + 4 + 8 + 8                 // path, type, mode, mtime, data length
	minFD      = 4 + 1 + 4 + minString + 8 + 2 + 1 + 8 + 8 // fd, kind, preopen, path, offset, flags, access, rights
	runSize    = 4 + 4                                     // first page, page count
)

// Bits of an FD record's access byte.
const (
	accessRead  = 1 << 0
	accessWrite = 1 << 1
)

// fdFlagsMask holds the WASI preview 1 fdflags: append, dsync, nonblock,
// rsync, sync.
const fdFlagsMask = 0x1f

// maxMode is the largest File.Mode: permission bits with setuid, setgid
// and sticky.
const maxMode = 0o7777

// HasMagic reports whether r starts with Magic: whether it looks like a
// snapshot (as opposed to a native pod's archive, say). It reads up to
// len(Magic) bytes.
func HasMagic(r io.Reader) bool {
	b := make([]byte, len(Magic))
	_, err := io.ReadFull(r, b)
	return err == nil && string(b) == Magic
}
