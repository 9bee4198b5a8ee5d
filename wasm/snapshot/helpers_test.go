package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// testModule returns a stand-in for a prepared module's bytes.
func testModule() []byte {
	return append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte("podctl vessel module "), 40)...)
}

// richSnapshot returns a snapshot that uses every feature of the format:
// memory with zero and non-zero pages (the last one non-zero), every
// global type, the module, several preopens holding regular files,
// directories and symbolic links, several descriptors, unicode arguments
// and environment, logs. It is the snapshot of testdata/golden-v1.snap,
// so it must never change.
func richSnapshot() *Snapshot {
	mem := make([]byte, 6*PageSize)
	// Page 0: the Asyncify data at 16 (current position, end of the
	// buffer), the unwound frames at 1024..2048, a string at the end.
	binary.LittleEndian.PutUint32(mem[16:], 1024+40)
	binary.LittleEndian.PutUint32(mem[20:], 2048)
	for i := 1024; i < 1024+40; i++ {
		mem[i] = byte(i * 7)
	}
	copy(mem[PageSize-6:], "hello!")
	// Page 1 is zero; pages 2 and 3 are a run; page 4 is zero; page 5
	// has one byte set in its middle and its last byte.
	for i := 2 * PageSize; i < 4*PageSize; i += 997 {
		mem[i] = byte(i>>8) | 1
	}
	mem[5*PageSize+PageSize/2] = 0x80
	mem[6*PageSize-1] = 0xff

	module := testModule()
	return &Snapshot{
		ModuleHash: sha256.Sum256(module),
		Module:     module,
		Meta: map[string]string{
			"podctl.pod.name": "web-1",
			"podctl.note":     "héllo ✓",
			"z.empty":         "",
		},
		Memory: mem,
		Globals: []Global{
			{Type: I32, Value: 0xffff_ffff},
			{Type: I64, Value: 1<<63 | 5},
			{Type: F32, Value: uint64(math.Float32bits(-1.5))},
			{Type: F64, Value: math.Float64bits(math.Pi)},
			{Type: I32, Value: 0},
			{Type: F64, Value: 0x7ff8_0000_dead_beef}, // a NaN with a payload
		},
		Stack: Stack{DataAddr: 16, Start: 1024, End: 2048},
		WASI: WASIState{
			Args:           []string{"app", "--name=Zürich", "日本語", "", "emoji 🐳"},
			Env:            []string{"HOME=/", "GREETING=héllo wörld ✓", "EMPTY="},
			MonotonicNanos: 123_456_789_012,
			Stdout:         []byte("starting\nready on :8080\n"),
			Stderr:         []byte("warning: \xff\xfe not utf-8\n"),
			Preopens: []Preopen{
				{
					FD:        3,
					GuestPath: "/data",
					Files: []File{
						{Path: "a.txt", Type: Regular, Mode: 0o644, ModTimeNanos: 1_700_000_000_123_456_789, Data: []byte("alpha\n")},
						{Path: "dir", Type: Directory, Mode: 0o755, ModTimeNanos: 1_700_000_001_000_000_000},
						{Path: "dir/b.bin", Type: Regular, Mode: 0o600, ModTimeNanos: -1, Data: []byte{0, 1, 2, 0xfe, 0xff}},
						{Path: "dir/link", Type: Symlink, Mode: 0o777, ModTimeNanos: 0, Data: []byte("../a.txt")},
						{Path: "dir/sub", Type: Directory, Mode: 0o1777, ModTimeNanos: 42},
						{Path: "dir/sub/empty", Type: Regular, Mode: 0o4755, ModTimeNanos: math.MinInt64},
						{Path: "ünïcödé.txt", Type: Regular, Mode: 0o644, ModTimeNanos: math.MaxInt64, Data: []byte("ü\n")},
					},
				},
				{FD: 4, GuestPath: "/tmp"},
				{
					FD:        5,
					GuestPath: ".",
					Files: []File{
						{Path: "log", Type: Regular, Mode: 0o640, ModTimeNanos: 5, Data: bytes.Repeat([]byte("line\n"), 100)},
					},
				},
			},
			FDs: []FD{
				{FD: 6, Kind: KindFile, Preopen: 3, Path: "a.txt", Offset: 3, Read: true, RightsBase: 0x1fffffff, RightsInheriting: 0},
				{FD: 7, Kind: KindDir, Preopen: 3, Path: "dir", Read: true, RightsBase: 0x0fffffff, RightsInheriting: 0x1fffffff},
				{FD: 8, Kind: KindFile, Preopen: 5, Path: "log", Offset: 500, Flags: 0x1, Write: true, RightsBase: 0x40, RightsInheriting: 0},
				{FD: 10, Kind: KindDir, Preopen: 4, Path: "", Read: true, Write: true, Flags: 0x1f, RightsBase: math.MaxUint64, RightsInheriting: math.MaxUint64},
			},
			NextFD: 11,
		},
	}
}

// smallSnapshot returns a small valid snapshot with a little of
// everything, for the tests that decode it thousands of times.
func smallSnapshot() *Snapshot {
	mem := make([]byte, 3*PageSize) // two runs: page 0, page 2
	copy(mem[100:], "small")
	mem[2*PageSize+1] = 1
	return &Snapshot{
		ModuleHash: sha256.Sum256([]byte("small module")),
		Memory:     mem,
		Globals:    []Global{{Type: I32, Value: 7}, {Type: F64, Value: 1}},
		Stack:      Stack{DataAddr: 8, Start: 16, End: 32},
		WASI: WASIState{
			Args:           []string{"small"},
			Env:            []string{"A=b"},
			MonotonicNanos: 99,
			Stdout:         []byte("out"),
			Preopens: []Preopen{{FD: 3, GuestPath: "/", Files: []File{
				{Path: "d", Type: Directory, Mode: 0o755},
				{Path: "d/f", Type: Regular, Mode: 0o644, Data: []byte("f")},
			}}},
			FDs:    []FD{{FD: 4, Kind: KindFile, Preopen: 3, Path: "d/f", Read: true}},
			NextFD: 5,
		},
	}
}

// minimalSnapshot returns the smallest valid snapshot: one zero page.
func minimalSnapshot() *Snapshot {
	return &Snapshot{Memory: make([]byte, PageSize)}
}

// encode encodes s, failing the test on error.
func encode(t testing.TB, s *Snapshot) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, s); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return buf.Bytes()
}

// body returns the uncompressed body Encode writes for s.
func body(t testing.TB, s *Snapshot) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := writeBody(&buf, s)
	if err != nil {
		t.Fatalf("writeBody: %v", err)
	}
	if n != uint64(buf.Len()) {
		t.Fatalf("writeBody returned length %d, wrote %d bytes", n, buf.Len())
	}
	return buf.Bytes()
}

// frame turns an uncompressed body, declared bodyLen bytes long, into a
// whole snapshot with a correct checksum: what a writer that follows the
// framing but not the body's rules would write.
func frame(t testing.TB, moduleHash [32]byte, b []byte, bodyLen uint64) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(false), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	var buf bytes.Buffer
	if err := writeFrame(&buf, moduleHash, bodyLen, zw.EncodeAll(b, nil)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// unframe splits an encoded snapshot into its header and its
// decompressed body.
func unframe(t testing.TB, data []byte) (hdr, b []byte) {
	t.Helper()
	if len(data) < headerSize+checksumSize {
		t.Fatalf("%d bytes: too short for a snapshot", len(data))
	}
	compLen := binary.LittleEndian.Uint64(data[compLenOffset:])
	if want := uint64(headerSize+checksumSize) + compLen; uint64(len(data)) != want {
		t.Fatalf("%d bytes, but the header says %d", len(data), want)
	}
	zr, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	b, err = zr.DecodeAll(data[headerSize:uint64(headerSize)+compLen], nil)
	if err != nil {
		t.Fatalf("decompress body: %v", err)
	}
	return data[:headerSize], b
}

// le32 and le64 return v little-endian.
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
