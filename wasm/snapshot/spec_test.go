package snapshot_test

// This file checks the format against its specification,
// docs/snapshot-format.md, rather than against the code: specUnframe and
// specDecodeBody are a reader written from the document alone, and the
// worked example of its §10 is read from the document itself. Nothing here
// uses the package but its data model, Encode and Decode.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/podctl/podctl/wasm/snapshot"
)

// specDoc is the format's specification.
const specDoc = "../../docs/snapshot-format.md"

// What the specification fixes.
const (
	specMagic      = "PODCTLWS" // §3
	specVersion    = 1          // §3
	specOffsetC    = 52         // §3: where C is, after the magic, version, module hash and B
	specHeaderSize = 60         // §3: magic, version, module hash, B, C
	specSumSize    = 32         // §3: the SHA-256 checksum
	specMaxLength  = 1 << 63    // §3: B and C are less
	specMaxWindow  = 8 << 20    // §4: the largest zstd window
	specPageSize   = 65536      // §5.6
	specMaxPages   = 65536      // §5.6
	specMaxMode    = 0o7777     // §5.5: a file's mode
	specFDFlags    = 0x1f       // §5.5: an fd's flags
	specFDAccess   = 0x3        // §5.5: an fd's access, read and write
	specPodctlWin  = 4 << 20    // §4: the window podctl writes
)

// le is the byte order of every integer of the format (§2).
var le = binary.LittleEndian

// specHeader is the fixed header of a snapshot (§3).
type specHeader struct {
	Version    uint32
	ModuleHash [32]byte
	BodyLen    uint64 // B
	CompLen    uint64 // C
}

// specUnframe reads a whole snapshot as §3 lays it out and returns its
// header and its body, decompressed as §4 specifies. It refuses a snapshot
// that does not start with the magic and version 1, whose B or C is 2^63
// or more, that ends before its checksum or goes on after it, or whose
// checksum does not match.
func specUnframe(data []byte) (specHeader, []byte, error) {
	var h specHeader
	if len(data) < len(specMagic)+4 {
		return h, nil, fmt.Errorf("%d bytes: too short for the magic and version", len(data))
	}
	if magic := data[:len(specMagic)]; string(magic) != specMagic {
		return h, nil, fmt.Errorf("magic %q, want %q", magic, specMagic)
	}
	// A later version may lay out everything after it differently (§6).
	if h.Version = le.Uint32(data[8:]); h.Version != specVersion {
		return h, nil, fmt.Errorf("version %d, want %d", h.Version, specVersion)
	}
	if len(data) < specHeaderSize+specSumSize {
		return h, nil, fmt.Errorf("%d bytes: too short for a header and a checksum", len(data))
	}
	copy(h.ModuleHash[:], data[12:44])
	h.BodyLen = le.Uint64(data[44:])
	h.CompLen = le.Uint64(data[specOffsetC:])
	if h.BodyLen >= specMaxLength || h.CompLen >= specMaxLength {
		return h, nil, fmt.Errorf("B = %d, C = %d: not less than 2^63", h.BodyLen, h.CompLen)
	}
	if n := uint64(len(data) - specHeaderSize - specSumSize); n != h.CompLen {
		return h, nil, fmt.Errorf("%d bytes between the header and the checksum, but C = %d", n, h.CompLen)
	}
	end := specHeaderSize + int(h.CompLen)
	if sum := sha256.Sum256(data[:end]); !bytes.Equal(sum[:], data[end:]) {
		return h, nil, fmt.Errorf("checksum %x, but bytes 0 to %d hash to %x", data[end:], end, sum)
	}
	body, err := specDecompress(data[specHeaderSize:end], h.BodyLen)
	return h, body, err
}

// specDecompress decompresses the C bytes of a compressed body (§4): a
// zstd stream of one or more frames, with windows of at most 8 MiB and no
// dictionary, that ends exactly where comp does and decompresses to
// exactly bodyLen bytes. The zstd decoder skips skippable frames, verifies
// content checksums that are present, refuses a dictionary (it knows
// none) and refuses bytes after the last frame that are not a frame.
func specDecompress(comp []byte, bodyLen uint64) ([]byte, error) {
	zr, err := zstd.NewReader(nil, zstd.WithDecoderMaxWindow(specMaxWindow), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	defer zr.Close()
	body, err := zr.DecodeAll(comp, nil)
	if err != nil {
		return nil, fmt.Errorf("compressed body: zstd: %w", err)
	}
	if uint64(len(body)) != bodyLen {
		return nil, fmt.Errorf("compressed body: decompresses to %d bytes, but B = %d", len(body), bodyLen)
	}
	return body, nil
}

// specDecode decodes a whole snapshot with specUnframe and specDecodeBody.
func specDecode(data []byte) (*snapshot.Snapshot, error) {
	h, body, err := specUnframe(data)
	if err != nil {
		return nil, err
	}
	return specDecodeBody(h, body)
}

// specDecodeBody decodes the body of a snapshot whose header is h, as §5
// lays it out, into the package's data model: the module's bytes are nil
// when absent, and every other empty list, map or byte string is nil.
//
// It refuses what §6 says breaks a rule of §5 in the body's structure: a
// field past the end of the body, an unknown code or a value out of its
// range, meta keys out of order, runs out of order or outside memory,
// bytes after the last field, and a module whose hash is not h's. It does
// not check the consistency rules about paths, the stack and descriptors,
// nor any limit (§7): Validate's business, and the reader's.
func specDecodeBody(h specHeader, body []byte) (*snapshot.Snapshot, error) {
	r := &specReader{b: body}
	s := &snapshot.Snapshot{ModuleHash: h.ModuleHash}
	r.module(s)
	r.meta(s)
	r.globals(s)
	r.stack(&s.Stack)
	r.wasi(&s.WASI)
	r.memory(s)
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d bytes after the memory section", len(r.b)-r.off)
	}
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}

// specReader reads the fields of a body in order. It keeps the first
// error, with the offset in the body where it occurred; every read after
// it returns a zero value.
type specReader struct {
	b   []byte // the body
	off int    // the offset of the next field
	err error
}

// fail records an error at the current offset, unless one is recorded.
func (r *specReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("body offset %d: %s", r.off, fmt.Sprintf(format, args...))
	}
}

// take returns the next n bytes of the body, the field what.
func (r *specReader) take(n uint64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if left := uint64(len(r.b) - r.off); n > left {
		r.fail("%s: %d bytes, only %d left", what, n, left)
		return nil
	}
	p := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return p
}

// u8, u16, u32, u64 and i64 read the integer types of §2.
func (r *specReader) u8(what string) uint8 {
	if p := r.take(1, what); p != nil {
		return p[0]
	}
	return 0
}

func (r *specReader) u16(what string) uint16 {
	if p := r.take(2, what); p != nil {
		return le.Uint16(p)
	}
	return 0
}

func (r *specReader) u32(what string) uint32 {
	if p := r.take(4, what); p != nil {
		return le.Uint32(p)
	}
	return 0
}

func (r *specReader) u64(what string) uint64 {
	if p := r.take(8, what); p != nil {
		return le.Uint64(p)
	}
	return 0
}

func (r *specReader) i64(what string) int64 { return int64(r.u64(what)) }

// str reads a str (§2): a u32 length, then that many bytes.
func (r *specReader) str(what string) string {
	return string(r.take(uint64(r.u32(what+" length")), what))
}

// bytes reads a bytes (§2): a u64 length, then that many bytes. It
// returns nil for an empty one.
func (r *specReader) bytes(what string) []byte {
	if p := r.take(r.u64(what+" length"), what); len(p) > 0 {
		return p
	}
	return nil
}

// count reads the u32 count of a list (§2) and returns it, or 0 once
// reading has failed, so that a loop over the list stops there.
func (r *specReader) count(what string) uint32 {
	n := r.u32(what + " count")
	if r.err != nil {
		return 0
	}
	return n
}

// strList reads a list of str (§5.5: args, env).
func (r *specReader) strList(what string) []string {
	var list []string
	for i := range r.count(what) {
		list = append(list, r.str(fmt.Sprintf("%s %d", what, i)))
		if r.err != nil {
			break
		}
	}
	return list
}

// module reads the module section (§5.1).
func (r *specReader) module(s *snapshot.Snapshot) {
	switch present := r.u8("module present"); present {
	case 0:
	case 1:
		m := r.take(r.u64("module length"), "module")
		if r.err != nil {
			return
		}
		if sum := sha256.Sum256(m); sum != s.ModuleHash {
			r.fail("module: SHA-256 %x, but the module hash is %x", sum, s.ModuleHash)
		}
		s.Module = append([]byte{}, m...) // present, so not nil, even if empty
	default:
		r.fail("module present: %d, want 0 or 1", present)
	}
}

// meta reads the meta section (§5.2).
func (r *specReader) meta(s *snapshot.Snapshot) {
	prev := ""
	for i := range r.count("meta") {
		k := r.str(fmt.Sprintf("meta %d key", i))
		v := r.str(fmt.Sprintf("meta %d value", i))
		switch {
		case r.err != nil:
		case k == "":
			r.fail("meta %d: empty key", i)
		case i > 0 && k <= prev:
			r.fail("meta %d: key %q not after %q", i, k, prev)
		}
		if r.err != nil {
			return
		}
		if s.Meta == nil {
			s.Meta = map[string]string{}
		}
		s.Meta[k], prev = v, k
	}
}

// globals reads the globals section (§5.3).
func (r *specReader) globals(s *snapshot.Snapshot) {
	for i := range r.count("globals") {
		what := fmt.Sprintf("global %d", i)
		g := snapshot.Global{Type: snapshot.ValueType(r.u8(what + " type"))}
		switch g.Type {
		case 0x7f, 0x7d: // i32, f32
			g.Value = uint64(r.u32(what + " value"))
		case 0x7e, 0x7c: // i64, f64
			g.Value = r.u64(what + " value")
		default:
			r.fail("%s: value type 0x%02x", what, uint8(g.Type))
		}
		if r.err != nil {
			return
		}
		s.Globals = append(s.Globals, g)
	}
}

// stack reads the stack section (§5.4).
func (r *specReader) stack(st *snapshot.Stack) {
	st.DataAddr = r.u32("stack data address")
	st.Start = r.u32("stack start")
	st.End = r.u32("stack end")
}

// wasi reads the WASI state section (§5.5).
func (r *specReader) wasi(w *snapshot.WASIState) {
	w.Args = r.strList("arg")
	w.Env = r.strList("env")
	w.MonotonicNanos = r.u64("monotonic")
	w.Stdout = r.bytes("stdout")
	w.Stderr = r.bytes("stderr")
	w.NextFD = r.u32("next fd")
	for i := range r.count("preopens") {
		p := r.preopen(fmt.Sprintf("preopen %d", i))
		if r.err != nil {
			return
		}
		w.Preopens = append(w.Preopens, p)
	}
	for i := range r.count("fds") {
		fd := r.fd(fmt.Sprintf("fd %d", i))
		if r.err != nil {
			return
		}
		w.FDs = append(w.FDs, fd)
	}
}

// preopen reads a preopen record and its files (§5.5), the field what.
func (r *specReader) preopen(what string) snapshot.Preopen {
	p := snapshot.Preopen{FD: r.u32(what + " fd"), GuestPath: r.str(what + " guest path")}
	for i := range r.count(what + " files") {
		f := r.file(fmt.Sprintf("%s file %d", what, i))
		if r.err != nil {
			break
		}
		p.Files = append(p.Files, f)
	}
	return p
}

// file reads a file record (§5.5), the field what.
func (r *specReader) file(what string) snapshot.File {
	f := snapshot.File{Path: r.str(what + " path")}
	switch t := r.u8(what + " type"); t {
	case 1, 2, 3: // regular file, directory, symbolic link
		f.Type = snapshot.FileType(t)
	default:
		r.fail("%s: file type %d", what, t)
	}
	if f.Mode = r.u32(what + " mode"); f.Mode > specMaxMode {
		r.fail("%s: mode %#o over %#o", what, f.Mode, specMaxMode)
	}
	f.ModTimeNanos = r.i64(what + " mtime")
	f.Data = r.bytes(what + " data")
	return f
}

// fd reads an fd record (§5.5), the field what.
func (r *specReader) fd(what string) snapshot.FD {
	fd := snapshot.FD{FD: r.u32(what + " fd")}
	switch k := r.u8(what + " kind"); k {
	case 1, 2: // file, directory
		fd.Kind = snapshot.FDKind(k)
	default:
		r.fail("%s: kind %d", what, k)
	}
	fd.Preopen = r.u32(what + " preopen")
	fd.Path = r.str(what + " path")
	fd.Offset = r.u64(what + " offset")
	if fd.Flags = r.u16(what + " flags"); fd.Flags&^specFDFlags != 0 {
		r.fail("%s: flags %#x", what, fd.Flags)
	}
	access := r.u8(what + " access")
	if access&^specFDAccess != 0 {
		r.fail("%s: access %#x", what, access)
	}
	fd.Read, fd.Write = access&1 != 0, access&2 != 0
	fd.RightsBase = r.u64(what + " rights base")
	fd.RightsInheriting = r.u64(what + " rights inheriting")
	return fd
}

// memory reads the memory section (§5.6).
func (r *specReader) memory(s *snapshot.Snapshot) {
	pages := r.u32("memory pages")
	if pages > specMaxPages {
		r.fail("memory: %d pages, over %d", pages, specMaxPages)
	}
	nruns := r.u32("memory run count")
	if nruns > pages {
		r.fail("memory: %d runs in %d pages", nruns, pages)
	}
	if r.err != nil {
		return
	}
	type run struct{ first, count uint64 }
	runs := make([]run, 0, nruns)
	var next uint64 // the first page a run may start at
	for i := range nruns {
		ru := run{uint64(r.u32(fmt.Sprintf("run %d first", i))), uint64(r.u32(fmt.Sprintf("run %d count", i)))}
		switch {
		case r.err != nil:
		case ru.count == 0:
			r.fail("run %d: empty", i)
		case ru.first < next:
			r.fail("run %d: starts at page %d, before page %d", i, ru.first, next)
		case ru.first+ru.count > uint64(pages):
			r.fail("run %d: pages %d to %d, past the memory's %d", i, ru.first, ru.first+ru.count-1, pages)
		}
		if r.err != nil {
			return
		}
		next = ru.first + ru.count
		runs = append(runs, ru)
	}
	s.Memory = make([]byte, uint64(pages)*specPageSize)
	for i, ru := range runs {
		copy(s.Memory[ru.first*specPageSize:], r.take(ru.count*specPageSize, fmt.Sprintf("run %d data", i)))
	}
}

// docExample is the worked example of §10 of the specification, as the
// document lists it.
type docExample struct {
	header, body, compressed, checksum []byte
}

// snapshot returns the example's bytes: its header, its compressed body
// and its checksum (§3).
func (ex docExample) snapshot() []byte {
	return slices.Concat(ex.header, ex.compressed, ex.checksum)
}

// readDocExample reads the example of §10 from the specification: its
// four hex dumps are, in order, the header, the body, the compressed body
// and the checksum.
func readDocExample(t *testing.T) docExample {
	t.Helper()
	doc, err := os.ReadFile(specDoc)
	if err != nil {
		t.Fatal(err)
	}
	const title = "\n## 10. Example\n"
	_, sec, ok := strings.Cut(string(doc), title)
	if !ok {
		t.Fatalf("%s: no section %q", specDoc, strings.TrimSpace(title))
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	var dumps [][]byte
	for i, block := range strings.Split(sec, "```") {
		if i%2 == 0 {
			continue // text between code blocks
		}
		_, block, _ = strings.Cut(block, "\n") // the info string
		b, err := parseDump(block)
		if err != nil {
			t.Fatalf("%s §10, code block %d: %v", specDoc, len(dumps)+1, err)
		}
		dumps = append(dumps, b)
	}
	if len(dumps) != 4 {
		t.Fatalf("%s §10: %d code blocks, want 4: header, body, compressed body, checksum", specDoc, len(dumps))
	}
	return docExample{header: dumps[0], body: dumps[1], compressed: dumps[2], checksum: dumps[3]}
}

// parseDump returns the bytes of a hex dump as the specification writes
// them. Each line holds bytes in hex, separated by spaces or commas, where
// "xx × n" stands for n bytes xx; a comment may follow, after at least
// three spaces. Anything else is an error, so that no byte of the
// document goes unread.
func parseDump(dump string) ([]byte, error) {
	var b []byte
	for n, line := range strings.Split(strings.TrimRight(dump, "\n"), "\n") {
		data, _, _ := strings.Cut(line, "   ")
		fields := strings.FieldsFunc(data, func(c rune) bool { return c == ' ' || c == ',' })
		if len(fields) == 0 {
			return nil, fmt.Errorf("line %d: no bytes: %q", n+1, line)
		}
		for i := 0; i < len(fields); i++ {
			if fields[i] != "×" {
				v, err := hex.DecodeString(fields[i])
				if err != nil || len(v) != 1 {
					return nil, fmt.Errorf("line %d: %q is not a byte in hex", n+1, fields[i])
				}
				b = append(b, v[0])
				continue
			}
			// "xx × n": the byte before, n times in all.
			if i == 0 || i+1 == len(fields) || fields[i-1] == "×" {
				return nil, fmt.Errorf("line %d: × not between a byte and a count", n+1)
			}
			count, err := strconv.Atoi(fields[i+1])
			if err != nil || count < 1 {
				return nil, fmt.Errorf("line %d: %q is not a count", n+1, fields[i+1])
			}
			b = append(b, bytes.Repeat(b[len(b)-1:], count-1)...)
			i++
		}
	}
	return b, nil
}

// docExampleSnapshot is the snapshot §10 describes in words: no module,
// no meta, one i32 global of value 0x10000, the stack data at 0x100 and
// its buffer at 0x108 to 0x200, one argument "app", next fd 3, and one
// page of memory whose byte 0x10 is 0x2A; its module hash is all zeros.
func docExampleSnapshot() *snapshot.Snapshot {
	mem := make([]byte, specPageSize)
	mem[0x10] = 0x2a
	return &snapshot.Snapshot{
		Memory:  mem,
		Globals: []snapshot.Global{{Type: snapshot.I32, Value: 0x10000}},
		Stack:   snapshot.Stack{DataAddr: 0x100, Start: 0x108, End: 0x200},
		WASI:    snapshot.WASIState{Args: []string{"app"}, NextFD: 3},
	}
}

// checkBytes reports the first difference between got and want, what.
func checkBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < min(len(got), len(want)) && got[i] == want[i] {
		i++
	}
	t.Errorf("%s: %d bytes, want %d; first difference at offset %d:\n got %x\nwant %x",
		what, len(got), len(want), i, got[i:min(len(got), i+16)], want[i:min(len(want), i+16)])
}

// TestSpecExample checks the worked example of §10 of the specification
// byte by byte. The document's dumps must be a snapshot that the reader
// written from the document decodes, with a valid checksum, to the body
// the document lists and to the values it states in words; Decode must
// decode them to the same values; and Encode must write the same header
// (up to C) and the same body for those values. The compressed bytes,
// hence C and the checksum, may differ from the document's: §10 says
// another compressor may compress otherwise.
func TestSpecExample(t *testing.T) {
	ex := readDocExample(t)
	data := ex.snapshot()
	want := docExampleSnapshot()

	if len(ex.header) != specHeaderSize {
		t.Fatalf("§10: a header of %d bytes, want %d", len(ex.header), specHeaderSize)
	}
	h, body, err := specUnframe(data)
	if err != nil {
		t.Fatalf("§10 example: %v", err)
	}
	if h.ModuleHash != ([32]byte{}) {
		t.Errorf("§10 example: module hash %x, want all zeros", h.ModuleHash)
	}
	checkBytes(t, "§10 example: decompressed body", body, ex.body)
	got, err := specDecodeBody(h, body)
	if err != nil {
		t.Fatalf("§10 example: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("§10 example, decoded from the document:\n got %+v\nwant %+v", got, want)
	}

	got, err = snapshot.Decode(bytes.NewReader(data), snapshot.Limits{})
	if err != nil {
		t.Fatalf("Decode(§10 example): %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode(§10 example):\n got %+v\nwant %+v", got, want)
	}

	var buf bytes.Buffer
	if err := snapshot.Encode(&buf, want); err != nil {
		t.Fatalf("Encode(§10 example): %v", err)
	}
	enc := buf.Bytes()
	checkBytes(t, "Encode(§10 example): header up to C", enc[:min(len(enc), specOffsetC)], ex.header[:specOffsetC])
	_, encBody, err := specUnframe(enc)
	if err != nil {
		t.Fatalf("Encode(§10 example): %v", err)
	}
	checkBytes(t, "Encode(§10 example): decompressed body", encBody, ex.body)

	// What §4 says podctl writes: a 4 MiB window and no content checksum.
	var zh zstd.Header
	if err := zh.Decode(enc[specHeaderSize:]); err != nil {
		t.Fatalf("Encode(§10 example): zstd frame header: %v", err)
	}
	if zh.WindowSize != specPodctlWin || zh.HasCheckSum || zh.DictionaryID != 0 {
		t.Errorf("Encode(§10 example): zstd window %d, content checksum %v, dictionary %d; want %d, false, 0",
			zh.WindowSize, zh.HasCheckSum, zh.DictionaryID, specPodctlWin)
	}
}

// TestSpecExampleFlippedByte flips a bit of each byte of the §10 example
// in turn: both readers must refuse every such snapshot, since the
// checksum covers every byte before it, and itself (§3).
func TestSpecExampleFlippedByte(t *testing.T) {
	data := readDocExample(t).snapshot()
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0x01
		if _, err := specDecode(bad); err == nil {
			t.Errorf("byte %d flipped: the reader written from the document accepts it", i)
		}
		if _, err := snapshot.Decode(bytes.NewReader(bad), snapshot.Limits{}); err == nil {
			t.Errorf("byte %d flipped: Decode accepts it", i)
		}
	}
}

// TestSpecGolden decodes testdata/golden-v1.snap, which uses every field
// of the format, with the reader written from the specification and with
// Decode: both must read the same snapshot.
func TestSpecGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/golden-v1.snap")
	if err != nil {
		t.Fatal(err)
	}
	want, err := specDecode(data)
	if err != nil {
		t.Fatalf("golden-v1.snap, decoded from the document: %v", err)
	}
	got, err := snapshot.Decode(bytes.NewReader(data), snapshot.Limits{})
	if err != nil {
		t.Fatalf("Decode(golden-v1.snap): %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode(golden-v1.snap) differs from the reader written from the document:\n got %+v\nwant %+v", got, want)
	}
}
