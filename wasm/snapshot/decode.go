package snapshot

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"slices"
	"strings"
	"unsafe"

	"github.com/klauspost/compress/zstd"

	"github.com/podctl/podctl/internal/errdefs"
)

// Decode reads a snapshot in the portable snapshot format, version
// Version, from r (docs/snapshot-format.md). r must hold one snapshot and
// nothing else: Decode reads it to its end and refuses anything after the
// checksum.
//
// Decode returns only a snapshot whose checksum matches and that passes
// Validate. Every size it reads is checked against lim and against what
// is left of the body, and charged against lim's budgets (MaxRecordBytes,
// MaxTotalBytes), before anything is allocated for it; a zero Limits
// means DefaultLimits. When the body is malformed or exceeds a limit,
// Decode stops decoding it but reads on to the checksum, so that a
// corrupt snapshot is reported as such rather than by its symptom.
//
// Every error starts with "snapshot: "; those about the input are
// classified errdefs.InvalidImage.
func Decode(r io.Reader, lim Limits) (*Snapshot, error) {
	return DecodeReserving(r, lim, nil)
}

// ErrOverBudget is wrapped by the error of a snapshot that needs more
// than Limits.MaxTotalBytes: one that may be fine, but too large for
// the decoder's budget.
var ErrOverBudget = errors.New("MaxTotalBytes")

// A Reserver reserves memory from a budget that a decode shares with
// other work, such as the other receives of a dock (see internal/budget).
// Reserve reserves n more bytes, or fails if they cannot be had.
type Reserver interface {
	Reserve(n int64) error
}

// DecodeBuffers is the most Decode allocates for its own buffers,
// whatever the input: the zstd window (at most 8 MiB) and block buffers,
// its readers' buffers. What it allocates for the snapshot comes on top,
// bounded by Limits.MaxTotalBytes.
const DecodeBuffers = 10 << 20

// DecodeReserving is Decode, with every byte it charges against
// lim.MaxTotalBytes also reserved from res before it is allocated, and
// DecodeBuffers reserved before anything is read. A nil res reserves
// nothing. A refused reservation ends the decode at once, without reading
// the rest of r (the refusal is no fault of the input's): the error says
// where Decode was and wraps the refusal, whose errdefs class it keeps.
func DecodeReserving(r io.Reader, lim Limits, res Reserver) (*Snapshot, error) {
	if res != nil {
		if err := res.Reserve(DecodeBuffers); err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
	}
	src := &source{r: r, h: sha256.New()}
	h, err := readHeader(src)
	if err != nil {
		return nil, err
	}
	body := &io.LimitedReader{R: src, N: int64(h.compLen)}
	s, bodyErr, refused := decodeBody(body, h, lim.withDefaults(), res)
	if refused {
		return nil, fmt.Errorf("snapshot: %w", bodyErr)
	}
	// Failing to read r and a truncated input are reported at once, a
	// problem in the body only once the checksum is verified.
	if err := src.verify(body); err != nil {
		return nil, err
	}
	if bodyErr != nil {
		return nil, invalid("%w", bodyErr)
	}
	if err := s.Validate(); err != nil {
		return nil, errdefs.New(errdefs.InvalidImage, "%w", err)
	}
	return s, nil
}

// header is what the header says beyond the magic and the version.
type header struct {
	moduleHash [32]byte
	bodyLen    uint64 // B
	compLen    uint64 // C
}

// readHeader reads and checks the header.
func readHeader(src *source) (header, error) {
	var hdr [headerSize]byte
	// The magic and the version first: another version may lay out the
	// rest of the header differently.
	if err := src.readFull(hdr[:hashOffset]); err != nil {
		got := hdr[:min(src.n, int64(len(Magic)))]
		switch {
		case src.n == 0 && src.eof:
			return header{}, invalid("empty input (not a portable snapshot)")
		case !strings.HasPrefix(Magic, string(got)):
			return header{}, badMagic(got)
		}
		return header{}, err
	}
	if string(hdr[:len(Magic)]) != Magic {
		return header{}, badMagic(hdr[:len(Magic)])
	}
	if v := binary.LittleEndian.Uint32(hdr[versionOffset:]); v != Version {
		return header{}, invalid("unsupported format version %d (this podctl reads version %d)", v, Version)
	}
	if err := src.readFull(hdr[hashOffset:]); err != nil {
		return header{}, err
	}
	h := header{
		moduleHash: [32]byte(hdr[hashOffset:bodyLenOffset]),
		bodyLen:    binary.LittleEndian.Uint64(hdr[bodyLenOffset:]),
		compLen:    binary.LittleEndian.Uint64(hdr[compLenOffset:]),
	}
	// Without C, there is no telling where the checksum is.
	if h.compLen > maxFieldLength {
		return header{}, invalid("corrupt header: compressed body length %d", h.compLen)
	}
	return h, nil
}

// decodeBody decompresses and decodes the body, reserving from res (if
// not nil) what it charges. It returns the snapshot and the first problem
// it found in the body; it stops decoding at that problem. refused says
// that the problem is a reservation res refused.
func decodeBody(body *io.LimitedReader, h header, lim Limits, res Reserver) (_ *Snapshot, _ error, refused bool) {
	if h.bodyLen > maxFieldLength {
		return nil, fmt.Errorf("corrupt header: body length %d", h.bodyLen), false
	}
	zr, err := zstd.NewReader(body,
		zstd.WithDecoderConcurrency(1), // decode in the caller's goroutine
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(maxWindow),
		zstd.WithDecoderMaxMemory(maxWindow),
		zstd.WithDecodeBuffersBelow(0)) // never decode all at once
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err), false
	}
	defer zr.Close()

	s := &Snapshot{ModuleHash: h.moduleHash}
	d := &bodyReader{
		r:    bufio.NewReaderSize(&io.LimitedReader{R: zr, N: int64(h.bodyLen)}, 32<<10),
		left: h.bodyLen,
		lim:  lim,
		res:  res,
	}
	d.snapshot(s)
	d.end(zr)
	if d.err == nil && body.N > 0 {
		// The zstd stream ended before the C bytes did (a decoder that
		// reads to the end of its input refuses this first).
		d.fail("%d bytes of the compressed body after the end of its zstd stream", body.N)
	}
	return s, d.err, d.refused
}

// invalid returns an InvalidImage error.
func invalid(format string, args ...any) error {
	return errdefs.New(errdefs.InvalidImage, "snapshot: "+format, args...)
}

func badMagic(got []byte) error {
	return invalid("not a portable snapshot (magic %q, want %q)", got, Magic)
}

// source reads the input, hashing what it reads while h is set.
type source struct {
	r   io.Reader
	h   hash.Hash
	n   int64 // bytes read
	eof bool  // r ended
	err error // r failed
}

func (s *source) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if s.h != nil {
		s.h.Write(p[:n])
	}
	s.n += int64(n)
	if errors.Is(err, io.EOF) {
		s.eof = true
	} else if err != nil && s.err == nil {
		s.err = err
	}
	return n, err
}

// readFull reads exactly len(p) bytes.
func (s *source) readFull(p []byte) error {
	if _, err := io.ReadFull(s, p); err != nil {
		if ferr := s.failure(); ferr != nil {
			return ferr
		}
		return fmt.Errorf("snapshot: read: %w", err)
	}
	return nil
}

// failure returns the error reading ran into, if any: r failing, or
// ending before the end of the snapshot. (Only verify reads past the
// checksum, so any end of r before that is a truncation.)
func (s *source) failure() error {
	if s.err != nil {
		return fmt.Errorf("snapshot: read: %w", s.err)
	}
	if s.eof {
		return invalid("truncated after %d bytes", s.n)
	}
	return nil
}

// verify reads what is left of the compressed body, which decoding may
// have stopped short of, and the checksum, and checks the checksum; then
// it checks that nothing follows.
func (s *source) verify(body io.Reader) error {
	if err := s.failure(); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, body)
	if ferr := s.failure(); ferr != nil {
		return ferr
	}
	if err != nil {
		return fmt.Errorf("snapshot: read: %w", err)
	}
	want := s.h.Sum(nil)
	s.h = nil // the checksum does not cover itself
	var sum [checksumSize]byte
	if err := s.readFull(sum[:]); err != nil {
		return err
	}
	if [checksumSize]byte(want) != sum {
		return invalid("checksum mismatch: the snapshot is corrupt")
	}
	var one [1]byte
	if n, err := io.ReadFull(s, one[:]); n > 0 {
		return invalid("data after the checksum")
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("snapshot: read: %w", err)
	}
	return nil
}

// bodyReader reads the fields of a body. After an error it reads nothing
// more and returns zero values, and err holds the error.
type bodyReader struct {
	r    *bufio.Reader
	left uint64 // bytes of the body not read yet
	lim  Limits
	res  Reserver // nil: charges are not reserved

	refused bool // err is a reservation res refused

	entries     int   // entries read, counted against MaxEntries
	fileBytes   int64 // file data and logs read, counted against MaxFileBytes
	recordBytes int64 // entries and strings, charged against MaxRecordBytes
	totalBytes  int64 // everything, charged against MaxTotalBytes

	err error

	buf     [8]byte
	scratch []byte // for strings; grows as their bytes arrive
}

// The size in memory of each kind of entry, which count charges against
// MaxRecordBytes (the bytes of a string are charged as it is read).
const (
	strSize     = uint64(unsafe.Sizeof("")) // an argument or environment variable
	metaSize    = 4 * strSize               // a key and a value, in a map up to half empty
	globalSize  = uint64(unsafe.Sizeof(Global{}))
	preopenSize = uint64(unsafe.Sizeof(Preopen{}))
	fileSize    = uint64(unsafe.Sizeof(File{}))
	fdSize      = uint64(unsafe.Sizeof(FD{}))  // the largest
	runMemSize  = uint64(unsafe.Sizeof(run{})) // a run of memory pages, charged against MaxTotalBytes
)

// fail records an error: a malformed body or a limit exceeded.
func (d *bodyReader) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

// wrap adds context to the error, if any, and reports whether there is
// one.
func (d *bodyReader) wrap(format string, args ...any) bool {
	if d.err == nil {
		return false
	}
	d.err = fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), d.err)
	return true
}

// read reads exactly len(p) bytes of the body.
func (d *bodyReader) read(p []byte) bool {
	if d.err != nil {
		return false
	}
	if uint64(len(p)) > d.left {
		d.fail("runs past the end of the body")
		return false
	}
	if _, err := io.ReadFull(d.r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			d.fail("the compressed body ends before the body's declared length")
		} else {
			d.fail("compressed body: %v", err)
		}
		return false
	}
	d.left -= uint64(len(p))
	return true
}

func (d *bodyReader) u8() uint8 {
	if !d.read(d.buf[:1]) {
		return 0
	}
	return d.buf[0]
}

func (d *bodyReader) u16() uint16 {
	if !d.read(d.buf[:2]) {
		return 0
	}
	return binary.LittleEndian.Uint16(d.buf[:])
}

func (d *bodyReader) u32() uint32 {
	if !d.read(d.buf[:4]) {
		return 0
	}
	return binary.LittleEndian.Uint32(d.buf[:])
}

func (d *bodyReader) u64() uint64 {
	if !d.read(d.buf[:8]) {
		return 0
	}
	return binary.LittleEndian.Uint64(d.buf[:])
}

// charge charges n bytes that Decode is about to allocate against
// MaxTotalBytes, and reserves them from res, and reports whether they fit.
func (d *bodyReader) charge(n uint64) bool {
	if d.err != nil {
		return false
	}
	if n > uint64(d.lim.MaxTotalBytes-d.totalBytes) {
		d.fail("%d more bytes exceed the budget of %d (%w)", n, d.lim.MaxTotalBytes, ErrOverBudget)
		return false
	}
	if d.res != nil {
		if err := d.res.Reserve(int64(n)); err != nil {
			d.fail("%w", err)
			d.refused = true
			return false
		}
	}
	d.totalBytes += int64(n)
	return true
}

// chargeRecords charges n bytes of entries or strings that Decode is
// about to allocate against MaxRecordBytes and MaxTotalBytes, and reports
// whether they fit.
func (d *bodyReader) chargeRecords(n uint64) bool {
	if d.err != nil {
		return false
	}
	if n > uint64(d.lim.MaxRecordBytes-d.recordBytes) {
		d.fail("%d more bytes of entries and strings exceed the limit of %d (MaxRecordBytes)", n, d.lim.MaxRecordBytes)
		return false
	}
	if !d.charge(n) {
		return false
	}
	d.recordBytes += int64(n)
	return true
}

// count reads a count of records (a uint32) that are entries, each at
// least minSize bytes long in the body and size bytes long in memory. It
// charges them all before any is read: a list grows as its entries
// arrive (appendEntry), but a count is a claim until the checksum is
// verified, and within the budgets it cannot make Decode allocate more
// than they allow.
func (d *bodyReader) count(minSize, size uint64) int {
	n := d.u32()
	if d.err != nil {
		return 0
	}
	if uint64(n) > uint64(d.lim.MaxEntries-d.entries) {
		d.fail("%d more entries exceed the limit of %d (MaxEntries)", n, d.lim.MaxEntries)
		return 0
	}
	if uint64(n)*minSize > d.left {
		d.fail("%d records cannot fit in the %d bytes left in the body", n, d.left)
		return 0
	}
	if !d.chargeRecords(uint64(n) * size) {
		return 0
	}
	d.entries += int(n)
	return int(n)
}

// appendEntry appends v to s, a list of n entries being read. The list
// grows as its entries arrive, doubling up to n, rather than being
// allocated for n at once.
func appendEntry[T any](s []T, n int, v T) []T {
	if len(s) == cap(s) {
		grown := make([]T, len(s), min(n, max(2*cap(s), 8)))
		copy(grown, s)
		s = grown
	}
	return append(s, v)
}

// preallocated is the most entries a map is allocated for before they
// are read.
func preallocated(n int) int { return min(n, 1024) }

// strChunk is how much of a string str reads at a time.
const strChunk = 16 << 10

// str reads a string: a uint32 length, then its bytes, which it charges
// against MaxRecordBytes.
func (d *bodyReader) str() string {
	n := d.u32()
	if d.err != nil {
		return ""
	}
	if uint64(n) > uint64(d.lim.MaxStringBytes) {
		d.fail("string of %d bytes exceeds the limit of %d (MaxStringBytes)", n, d.lim.MaxStringBytes)
		return ""
	}
	if uint64(n) > d.left {
		d.fail("string of %d bytes runs past the end of the body", n)
		return ""
	}
	if n == 0 || !d.chargeRecords(uint64(n)) {
		return ""
	}
	// The bytes are gathered in scratch, which grows as they arrive
	// (up to the longest string), then copied into the string.
	b := d.scratch[:0]
	for len(b) < int(n) {
		k := min(int(n)-len(b), strChunk)
		b = slices.Grow(b, k)
		if !d.read(b[len(b) : len(b)+k]) {
			return ""
		}
		b = b[:len(b)+k]
	}
	d.scratch = b
	return string(b)
}

// strList reads a list of strings: a count, then each string.
func (d *bodyReader) strList(what string) []string {
	n := d.count(minString, strSize)
	var list []string
	for i := range n {
		s := d.str()
		if d.wrap("%s %d", what, i) {
			return nil
		}
		list = appendEntry(list, n, s)
	}
	return list
}

// blobLen reads the length of a byte string (a uint64): at most room
// bytes, what is left of the limit named name, of value limit. It charges
// the bytes against MaxTotalBytes.
func (d *bodyReader) blobLen(room, limit int64, name string) uint64 {
	n := d.u64()
	if d.err != nil {
		return 0
	}
	switch {
	case n > uint64(room) && room < limit:
		d.fail("%d more bytes exceed the limit of %d (%s)", n, limit, name)
	case n > uint64(room):
		d.fail("%d bytes exceed the limit of %d (%s)", n, limit, name)
	case n > d.left:
		d.fail("%d bytes run past the end of the body", n)
	case n > math.MaxInt:
		d.fail("%d bytes do not fit in this host's address space", n)
	case d.charge(n):
		return n
	}
	return 0
}

// blobChunk is the most Decode allocates for a byte string before reading
// that much of it: the length is a claim until the checksum is verified.
const blobChunk = 1 << 20

// blob reads the n bytes of a byte string; it returns nil when n is 0.
func (d *bodyReader) blob(n uint64) []byte {
	if d.err != nil || n == 0 {
		return nil
	}
	b := make([]byte, 0, min(n, blobChunk))
	for uint64(len(b)) < n {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), min(n, 2*uint64(cap(b))))
			copy(nb, b)
			b = nb
		}
		if !d.read(b[len(b):cap(b)]) {
			return nil
		}
		b = b[:cap(b)]
	}
	return b
}

// fileData reads file data or a log, counted against MaxFileBytes.
func (d *bodyReader) fileData() []byte {
	lim := d.lim.MaxFileBytes
	n := d.blobLen(lim-d.fileBytes, lim, "MaxFileBytes")
	d.fileBytes += int64(n)
	return d.blob(n)
}

// snapshot reads a whole body into s.
func (d *bodyReader) snapshot(s *Snapshot) {
	switch flag := d.u8(); flag {
	case 0:
	case 1:
		lim := d.lim.MaxModuleBytes
		n := d.blobLen(lim, lim, "MaxModuleBytes")
		s.Module = d.blob(n)
		if s.Module == nil {
			s.Module = []byte{}
		}
	default:
		d.fail("presence flag %d (want 0 or 1)", flag)
	}
	if d.wrap("module") {
		return
	}

	d.meta(s)
	if d.wrap("meta") {
		return
	}

	d.globals(s)
	if d.wrap("globals") {
		return
	}

	s.Stack.DataAddr = d.u32()
	s.Stack.Start = d.u32()
	s.Stack.End = d.u32()
	if d.wrap("stack") {
		return
	}

	d.wasi(&s.WASI)
	if d.wrap("wasi") {
		return
	}

	s.Memory = d.memory()
	d.wrap("memory")
}

func (d *bodyReader) meta(s *Snapshot) {
	n := d.count(minMeta, metaSize)
	if n > 0 {
		s.Meta = make(map[string]string, preallocated(n))
	}
	prev := ""
	for i := range n {
		k, v := d.str(), d.str()
		if d.err == nil && i > 0 && k <= prev {
			d.fail("key %q is not after %q", k, prev)
		}
		if d.wrap("entry %d", i) {
			return
		}
		s.Meta[k] = v
		prev = k
	}
}

func (d *bodyReader) globals(s *Snapshot) {
	n := d.count(minGlobal, globalSize)
	for i := range n {
		g := Global{Type: ValueType(d.u8())}
		switch g.Type {
		case I32, F32:
			g.Value = uint64(d.u32())
		case I64, F64:
			g.Value = d.u64()
		default:
			d.fail("invalid value type %#x", uint8(g.Type))
		}
		if d.wrap("global %d", i) {
			return
		}
		s.Globals = appendEntry(s.Globals, n, g)
	}
}

func (d *bodyReader) wasi(w *WASIState) {
	w.Args = d.strList("arg")
	w.Env = d.strList("env")
	w.MonotonicNanos = d.u64()
	if d.err != nil {
		return
	}
	w.Stdout = d.fileData()
	if d.wrap("stdout") {
		return
	}
	w.Stderr = d.fileData()
	if d.wrap("stderr") {
		return
	}
	w.NextFD = d.u32()

	n := d.count(minPreopen, preopenSize)
	for i := range n {
		p := d.preopen()
		if d.wrap("preopen %d", i) {
			return
		}
		w.Preopens = appendEntry(w.Preopens, n, p)
	}

	n = d.count(minFD, fdSize)
	for i := range n {
		fd := d.fd()
		if d.wrap("descriptor record %d", i) {
			return
		}
		w.FDs = appendEntry(w.FDs, n, fd)
	}
}

func (d *bodyReader) preopen() Preopen {
	p := Preopen{FD: d.u32(), GuestPath: d.str()}
	n := d.count(minFile, fileSize)
	for i := range n {
		f := File{
			Path:         d.str(),
			Type:         FileType(d.u8()),
			Mode:         d.u32(),
			ModTimeNanos: int64(d.u64()),
		}
		f.Data = d.fileData()
		if d.wrap("file %d", i) {
			return p
		}
		p.Files = appendEntry(p.Files, n, f)
	}
	return p
}

func (d *bodyReader) fd() FD {
	fd := FD{
		FD:      d.u32(),
		Kind:    FDKind(d.u8()),
		Preopen: d.u32(),
		Path:    d.str(),
		Offset:  d.u64(),
		Flags:   d.u16(),
	}
	access := d.u8()
	if access&^(accessRead|accessWrite) != 0 {
		d.fail("invalid access bits %#x", access)
	}
	fd.Read = access&accessRead != 0
	fd.Write = access&accessWrite != 0
	fd.RightsBase = d.u64()
	fd.RightsInheriting = d.u64()
	return fd
}

// memory reads linear memory. It charges memory and its run table
// against MaxTotalBytes first, and allocates memory only once the run
// table is read and the data of the runs is known to fit in the body.
func (d *bodyReader) memory() []byte {
	pages := d.u32()
	nruns := d.u32()
	if d.err != nil {
		return nil
	}
	size := uint64(pages) * PageSize
	switch {
	case pages > MaxPages:
		d.fail("%d pages, more than the wasm32 maximum of %d", pages, MaxPages)
	case size > uint64(d.lim.MaxMemoryBytes):
		d.fail("%d bytes exceed the limit of %d (MaxMemoryBytes)", size, d.lim.MaxMemoryBytes)
	case size > math.MaxInt:
		d.fail("%d bytes do not fit in this host's address space", size)
	case nruns > pages:
		d.fail("%d runs of pages in %d pages", nruns, pages)
	case uint64(nruns)*runSize > d.left:
		d.fail("%d runs cannot fit in the %d bytes left in the body", nruns, d.left)
	}
	if !d.charge(size + uint64(nruns)*runMemSize) {
		return nil
	}

	var runs []run
	var next, data uint64 // the first page a run may start at; bytes of run data
	for i := range int(nruns) {
		r := run{first: d.u32(), count: d.u32()}
		if d.err != nil {
			return nil
		}
		if r.count == 0 || uint64(r.first) < next || uint64(r.first)+uint64(r.count) > uint64(pages) {
			d.fail("run %d (pages %d to %d) is empty, out of order or beyond %d pages",
				i, r.first, uint64(r.first)+uint64(r.count), pages)
			return nil
		}
		next = uint64(r.first) + uint64(r.count)
		data += uint64(r.count) * PageSize
		runs = appendEntry(runs, int(nruns), r)
	}
	if data > d.left {
		d.fail("%d bytes of pages run past the end of the body", data)
		return nil
	}
	if pages == 0 {
		return nil
	}
	mem := make([]byte, size)
	for _, r := range runs {
		if !d.read(mem[uint64(r.first)*PageSize : (uint64(r.first)+uint64(r.count))*PageSize]) {
			return nil
		}
	}
	return mem
}

// end checks that the body ended where its declared length says, and
// that zr has nothing after it.
func (d *bodyReader) end(zr io.Reader) {
	if d.err != nil {
		return
	}
	if d.left > 0 {
		d.fail("%d bytes left in the body after its last field", d.left)
		return
	}
	var one [1]byte
	n, err := io.ReadFull(zr, one[:])
	switch {
	case n > 0:
		d.fail("the compressed body holds more than the body's declared length")
	case !errors.Is(err, io.EOF):
		d.fail("compressed body: %v", err)
	}
}
