package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/podctl/podctl/internal/errdefs"
)

func TestRoundTrip(t *testing.T) {
	withoutModule := richSnapshot()
	withoutModule.Module = nil
	emptyModule := richSnapshot()
	emptyModule.Module = []byte{}
	emptyModule.ModuleHash = sha256.Sum256(nil)
	lastPageOnly := minimalSnapshot()
	lastPageOnly.Memory = make([]byte, 3*PageSize)
	lastPageOnly.Memory[len(lastPageOnly.Memory)-1] = 1
	allPages := minimalSnapshot()
	allPages.Memory = bytes.Repeat([]byte{0xa5}, 4*PageSize)
	// Incompressible memory larger than zstd's window.
	large := minimalSnapshot()
	large.Memory = make([]byte, 24<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(large.Memory); i += 8 {
		binary.LittleEndian.PutUint64(large.Memory[i:], rng.Uint64())
	}

	for _, tc := range []struct {
		name string
		s    *Snapshot
	}{
		{"rich", richSnapshot()},
		{"without module", withoutModule},
		{"empty module", emptyModule},
		{"small", smallSnapshot()},
		{"minimal", minimalSnapshot()},
		{"last page only", lastPageOnly},
		{"all pages non-zero", allPages},
		{"large random memory", large},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := encode(t, tc.s)
			got, err := Decode(bytes.NewReader(data), Limits{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.s) {
				t.Errorf("Decode(Encode(s)) differs from s:\n got %+v\nwant %+v", got, tc.s)
			}
			if (got.Module == nil) != (tc.s.Module == nil) {
				t.Errorf("module present = %v, want %v", got.Module != nil, tc.s.Module != nil)
			}
			// Decode must not depend on how the reader splits its reads.
			if len(data) > 1<<20 {
				return // too slow a byte at a time
			}
			got, err = Decode(iotest.OneByteReader(bytes.NewReader(data)), Limits{})
			if err != nil {
				t.Fatalf("Decode, one byte at a time: %v", err)
			}
			if !reflect.DeepEqual(got, tc.s) {
				t.Error("Decode, one byte at a time, differs from s")
			}
		})
	}
}

func TestEncodeDeterministic(t *testing.T) {
	a, b := encode(t, richSnapshot()), encode(t, richSnapshot())
	if !bytes.Equal(a, b) {
		t.Error("two encodings of the same snapshot differ")
	}
}

func TestEncodeDoesNotModify(t *testing.T) {
	s := richSnapshot()
	encode(t, s)
	if !reflect.DeepEqual(s, richSnapshot()) {
		t.Error("Encode modified its snapshot")
	}
}

func TestZeroPagesSkipped(t *testing.T) {
	s := minimalSnapshot()
	s.Memory = make([]byte, 64<<20)
	s.Memory[40<<20+12345] = 0x42
	data := encode(t, s)
	if len(data) > 4<<10 {
		t.Errorf("64 MiB of memory with one non-zero byte encodes to %d bytes, want a few KiB at most", len(data))
	}
	// Skipped, not merely compressed: the uncompressed body holds one
	// page of memory, not 1024.
	if bodyLen := binary.LittleEndian.Uint64(data[bodyLenOffset:]); bodyLen > PageSize+1024 {
		t.Errorf("uncompressed body is %d bytes, want about one page (%d)", bodyLen, PageSize)
	}
	got, err := Decode(bytes.NewReader(data), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Memory, s.Memory) {
		t.Error("memory differs after the round trip")
	}
}

func TestMemoryRuns(t *testing.T) {
	for _, tc := range []struct {
		nonZero []int // pages with a non-zero byte
		pages   int
		want    []run
	}{
		{nil, 0, nil},
		{nil, 5, nil},
		{[]int{0}, 1, []run{{0, 1}}},
		{[]int{0, 1, 2}, 3, []run{{0, 3}}},
		{[]int{1, 3, 4, 7}, 8, []run{{1, 1}, {3, 2}, {7, 1}}},
		{[]int{0, 7}, 8, []run{{0, 1}, {7, 1}}},
	} {
		mem := make([]byte, tc.pages*PageSize)
		for i, p := range tc.nonZero {
			mem[p*PageSize+(i*4099)%PageSize] = 1 // anywhere in the page
		}
		if got := memoryRuns(mem); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("pages %v of %d: runs %v, want %v", tc.nonZero, tc.pages, got, tc.want)
		}
	}
}

// checkDecodeError checks that err is a one-line InvalidImage error
// starting "snapshot: " and containing want.
func checkDecodeError(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("Decode succeeded, want an error containing %q", want)
	case !strings.HasPrefix(err.Error(), "snapshot: "):
		t.Errorf("error %q does not start with \"snapshot: \"", err)
	case strings.Contains(err.Error(), "\n"):
		t.Errorf("error %q is not one line", err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("error %q, want it to contain %q", err, want)
	case !errdefs.Is(err, errdefs.InvalidImage):
		t.Errorf("error %q is not classified InvalidImage", err)
	}
}

func TestEveryByteFlipRefused(t *testing.T) {
	data := encode(t, smallSnapshot())
	compEnd := len(data) - checksumSize
	messages := make(map[string]int)
	for off := range data {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(data)
			bad[off] ^= mask
			_, err := Decode(bytes.NewReader(bad), Limits{})
			if err == nil {
				t.Fatalf("byte %d of %d flipped (^%#x): Decode succeeded", off, len(data), mask)
			}
			checkDecodeError(t, err, "")
			switch {
			case off < versionOffset:
				checkDecodeError(t, err, "not a portable snapshot")
			case off < hashOffset:
				checkDecodeError(t, err, "unsupported format version")
			case off < bodyLenOffset || off >= compEnd:
				// The module hash and the checksum itself.
				checkDecodeError(t, err, "checksum mismatch")
			case off >= headerSize:
				// The compressed body: the checksum diagnoses the
				// corruption, whatever its symptom.
				checkDecodeError(t, err, "checksum mismatch")
			}
			msg := err.Error()
			if i := strings.IndexAny(msg, "0123456789"); i > 0 {
				msg = msg[:i]
			}
			messages[msg]++
		}
	}
	t.Logf("%d bytes, errors: %v", len(data), messages)
}

func TestEveryTruncationRefused(t *testing.T) {
	data := encode(t, smallSnapshot())
	for n := range len(data) {
		_, err := Decode(bytes.NewReader(data[:n]), Limits{})
		if err == nil {
			t.Fatalf("truncated to %d of %d bytes: Decode succeeded", n, len(data))
		}
		want := "truncated"
		if n == 0 {
			want = "empty input"
		}
		checkDecodeError(t, err, want)
	}
}

func TestTrailingDataRefused(t *testing.T) {
	data := encode(t, smallSnapshot())
	for _, extra := range []string{"\x00", "x", string(data)} {
		_, err := Decode(bytes.NewReader(append(bytes.Clone(data), extra...)), Limits{})
		checkDecodeError(t, err, "snapshot: data after the checksum")
	}
}

func TestVersionAndMagic(t *testing.T) {
	data := encode(t, smallSnapshot())

	v2 := bytes.Clone(data)
	binary.LittleEndian.PutUint32(v2[versionOffset:], 2)
	_, err := Decode(bytes.NewReader(v2), Limits{})
	if err == nil || err.Error() != "snapshot: unsupported format version 2 (this podctl reads version 1)" {
		t.Errorf("version 2: error %v", err)
	}
	// Only the magic and the version are read: a later version may lay
	// out everything after them differently.
	_, err = Decode(bytes.NewReader(v2[:hashOffset]), Limits{})
	if err == nil || err.Error() != "snapshot: unsupported format version 2 (this podctl reads version 1)" {
		t.Errorf("version 2, header only: error %v", err)
	}

	for _, tc := range []struct {
		in, want string
	}{
		{"", "snapshot: empty input (not a portable snapshot)"},
		{"PODC", "snapshot: truncated after 4 bytes"},
		{"PODCTLWS\x01\x00", "snapshot: truncated after 10 bytes"},
		{"\x28\xb5\x2f\xfd", `snapshot: not a portable snapshot (magic "(\xb5/\xfd", want "PODCTLWS")`},
		{"PODCTLWZ\x01\x00\x00\x00", `snapshot: not a portable snapshot (magic "PODCTLWZ", want "PODCTLWS")`},
		{"podctlws" + string(data[8:]), `snapshot: not a portable snapshot (magic "podctlws", want "PODCTLWS")`},
	} {
		_, err := Decode(strings.NewReader(tc.in), Limits{})
		if err == nil || err.Error() != tc.want {
			t.Errorf("Decode(%q): error %v, want %s", tc.in, err, tc.want)
		}
		checkDecodeError(t, err, "")
	}
}

func TestReadError(t *testing.T) {
	data := encode(t, smallSnapshot())
	boom := errors.New("boom")
	for _, n := range []int{0, 5, headerSize + 3, len(data) - 1} {
		r := io.MultiReader(bytes.NewReader(data[:n]), iotest.ErrReader(boom))
		_, err := Decode(r, Limits{})
		if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "snapshot: read: ") {
			t.Errorf("read error after %d bytes: got %v", n, err)
		}
	}
}

func TestLimits(t *testing.T) {
	data := encode(t, richSnapshot())
	if _, err := Decode(bytes.NewReader(data), DefaultLimits()); err != nil {
		t.Fatalf("within the default limits: %v", err)
	}
	s := richSnapshot()
	entries := len(s.Meta) + len(s.Globals) + len(s.WASI.Args) + len(s.WASI.Env) + len(s.WASI.Preopens) + len(s.WASI.FDs)
	fileBytes := len(s.WASI.Stdout) + len(s.WASI.Stderr)
	longest := 0
	for _, p := range s.WASI.Preopens {
		entries += len(p.Files)
		for _, f := range p.Files {
			fileBytes += len(f.Data)
			longest = max(longest, len(f.Path))
		}
	}
	for _, a := range append(s.WASI.Args, s.WASI.Env...) {
		longest = max(longest, len(a))
	}
	for k, v := range s.Meta {
		longest = max(longest, len(k), len(v))
	}

	checkLimits(t, data, []limitCase{
		{"memory fits", Limits{MaxMemoryBytes: int64(len(s.Memory))}, ""},
		{"memory", Limits{MaxMemoryBytes: int64(len(s.Memory)) - 1}, "(MaxMemoryBytes)"},
		{"module fits", Limits{MaxModuleBytes: int64(len(s.Module))}, ""},
		{"module", Limits{MaxModuleBytes: int64(len(s.Module)) - 1}, "snapshot: module: "},
		{"files fit", Limits{MaxFileBytes: int64(fileBytes)}, ""},
		{"files", Limits{MaxFileBytes: int64(fileBytes) - 1}, "(MaxFileBytes)"},
		{"entries fit", Limits{MaxEntries: entries}, ""},
		{"entries", Limits{MaxEntries: entries - 1}, "(MaxEntries)"},
		{"strings fit", Limits{MaxStringBytes: longest}, ""},
		{"strings", Limits{MaxStringBytes: longest - 1}, "(MaxStringBytes)"},
	})
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHugeClaimsNotAllocated crafts snapshots (with correct checksums)
// whose sizes claim far more than they hold, and checks that Decode
// refuses them without allocating what they claim.
func TestHugeClaimsNotAllocated(t *testing.T) {
	const budget = 8 << 20 // what Decode may allocate for a small input
	var hash [32]byte
	base := body(t, minimalSnapshot())
	// memoryAt is the body of minimalSnapshot with its memory section
	// (pages, runs, run table) replaced.
	memoryAt := func(section ...[]byte) []byte {
		return cat(append([][]byte{base[:len(base)-8]}, section...)...)
	}
	const huge = 1 << 62 // a declared body length

	for _, tc := range []struct {
		name string
		in   []byte
		lim  Limits
		want string
	}{
		{
			name: "4 GiB memory over MaxMemoryBytes",
			in:   frame(t, hash, memoryAt(le32(MaxPages), le32(0)), uint64(len(base))),
			lim:  Limits{MaxMemoryBytes: 1 << 30},
			want: "snapshot: memory: 4294967296 bytes exceed the limit of 1073741824 (MaxMemoryBytes)",
		},
		{
			name: "memory beyond wasm32",
			in:   frame(t, hash, memoryAt(le32(MaxPages+1), le32(0)), uint64(len(base))),
			want: "more than the wasm32 maximum",
		},
		{
			name: "1 GiB of page data not in the body",
			in:   frame(t, hash, memoryAt(le32(MaxPages/4), le32(1), le32(0), le32(MaxPages/4)), uint64(len(base))+8),
			want: "bytes of pages run past the end of the body",
		},
		{
			name: "module of 200 MiB, within limits, not there",
			in:   frame(t, hash, cat([]byte{1}, le64(200<<20), []byte("abc")), huge),
			want: "snapshot: module: the compressed body ends before the body's declared length",
		},
		{
			name: "module over MaxModuleBytes",
			in:   frame(t, hash, cat([]byte{1}, le64(1<<40)), huge),
			want: "snapshot: module: 1099511627776 bytes exceed the limit of 268435456 (MaxModuleBytes)",
		},
		{
			name: "module longer than the body",
			in:   frame(t, hash, cat([]byte{1}, le64(200<<20), []byte("abc")), 12),
			want: "snapshot: module: 209715200 bytes run past the end of the body",
		},
		{
			name: "a million globals, not there",
			in:   frame(t, hash, cat([]byte{0}, le32(0), le32(1<<20)), huge),
			want: "snapshot: globals: global 0: the compressed body ends",
		},
		{
			name: "globals over MaxEntries",
			in:   frame(t, hash, cat([]byte{0}, le32(0), le32(1<<20+1)), huge),
			want: "(MaxEntries)",
		},
		{
			name: "a million args in a short body",
			in:   frame(t, hash, cat([]byte{0}, le32(0), le32(0), make([]byte, 12), le32(1<<20)), 100),
			want: "snapshot: wasi: 1048576 records cannot fit in the 75 bytes left in the body",
		},
		{
			name: "a million args, not there",
			in:   frame(t, hash, cat([]byte{0}, le32(0), le32(0), make([]byte, 12), le32(1<<20)), huge),
			want: "snapshot: wasi: arg 0: the compressed body ends",
		},
		{
			name: "a million meta entries, not there",
			in:   frame(t, hash, cat([]byte{0}, le32(1<<19)), huge),
			want: "snapshot: meta: entry 0: the compressed body ends",
		},
		{
			name: "a 64 KiB arg, not there",
			in:   frame(t, hash, cat([]byte{0}, le32(0), le32(0), make([]byte, 12), le32(1), le32(64<<10)), huge),
			want: "snapshot: wasi: arg 0: the compressed body ends",
		},
		{
			name: "stdout of 1 GiB, not there",
			in:   frame(t, hash, cat([]byte{0}, le32(0), le32(0), make([]byte, 12), le32(0), le32(0), le64(0), le64(1<<30)), huge),
			want: "snapshot: wasi: stdout: the compressed body ends",
		},
		{
			name: "stdout over MaxFileBytes",
			in:   frame(t, hash, cat([]byte{0}, le32(0), le32(0), make([]byte, 12), le32(0), le32(0), le64(0), le64(1<<30+1)), huge),
			want: "(MaxFileBytes)",
		},
		{
			name: "body length beyond int64",
			in:   frame(t, hash, base, 1<<63),
			want: "snapshot: corrupt header: body length 9223372036854775808",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = Decode(bytes.NewReader(tc.in), tc.lim) })
			checkDecodeError(t, err, tc.want)
			if n > budget {
				t.Errorf("Decode allocated %d bytes for a %d-byte input", n, len(tc.in))
			}
		})
	}
}

// TestMalformedBodyRefused crafts bodies with correct checksums that break
// the body's rules, and checks that each is refused with its own error.
func TestMalformedBodyRefused(t *testing.T) {
	s := smallSnapshot()
	good := body(t, s)
	// Offsets in the body of smallSnapshot.
	const (
		globalsAt = 1 + 4                 // module flag 0, meta count 0, then the globals
		stackAt   = globalsAt + 4 + 5 + 9 // count, i32, f64
	)
	fdAccessAt := bytes.Index(good, []byte("d/f\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"))
	if fdAccessAt < 0 {
		t.Fatal("descriptor record not found in the body")
	}
	fdAccessAt += 3 + 8 + 2
	memAt := len(good) - 8 - 2*runSize - 2*PageSize // pages, run count, 2 runs, 2 pages of data

	withMeta := smallSnapshot()
	withMeta.Meta = map[string]string{"k1": "v1", "k2": "v2"}
	metaBody := body(t, withMeta)
	k2 := bytes.Index(metaBody, []byte("k2"))
	metaOutOfOrder := bytes.Clone(metaBody)
	metaOutOfOrder[k2+1] = '0'
	metaRepeated := bytes.Clone(metaBody)
	metaRepeated[k2+1] = '1'
	// The first entry, "k1" (4+2 bytes) -> "v1" (4+2), becomes "" -> "v1k1".
	metaEmptyKey := bytes.Clone(metaBody)
	copy(metaEmptyKey[1+4:], cat(le32(0), le32(4), []byte("v1k1")))

	patch := func(off int, b ...byte) []byte {
		out := bytes.Clone(good)
		copy(out[off:], b)
		return out
	}
	withLen := func(b []byte) []byte { return frame(t, s.ModuleHash, b, uint64(len(b))) }

	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"module flag", withLen(patch(0, 2)), "snapshot: module: presence flag 2 (want 0 or 1)"},
		{"global type", withLen(patch(globalsAt+4, 0x7b)), "snapshot: globals: global 0: invalid value type 0x7b"},
		{"access bits", withLen(patch(fdAccessAt, 4)), "invalid access bits 0x4"},
		{"run out of order", withLen(patch(memAt+16, le32(0)...)), "snapshot: memory: run 1 (pages 0 to 1) is empty, out of order or beyond 3 pages"},
		{"run beyond memory", withLen(patch(memAt+16, le32(3)...)), "snapshot: memory: run 1 (pages 3 to 4) is empty, out of order or beyond 3 pages"},
		{"empty run", withLen(patch(memAt+12, le32(0)...)), "snapshot: memory: run 0 (pages 0 to 0) is empty"},
		{"more runs than pages", withLen(patch(memAt+4, le32(4)...)), "snapshot: memory: 4 runs of pages in 3 pages"},
		{"body shorter than declared", frame(t, s.ModuleHash, good, uint64(len(good))+1), "1 bytes left in the body after its last field"},
		{"body longer than declared", frame(t, s.ModuleHash, append(bytes.Clone(good), 0), uint64(len(good))), "the compressed body holds more than the body's declared length"},
		{"body cut short", frame(t, s.ModuleHash, good[:len(good)-1], uint64(len(good))), "snapshot: memory: the compressed body ends before the body's declared length"},
		{"stack beyond memory", withLen(patch(stackAt, le32(3*PageSize-7)...)), "snapshot: invalid: stack: Asyncify data at 0x2fff9 does not fit in 196608 bytes of memory"},
		{"module hash", frame(t, sha256.Sum256(nil), cat([]byte{1}, le64(1), []byte("x"), good[1:]), uint64(len(good)+9)), "snapshot: invalid: module bytes hash to sha256:"},
		{"meta keys out of order", withLen(metaOutOfOrder), `snapshot: meta: entry 1: key "k0" is not after "k1"`},
		{"meta keys repeated", withLen(metaRepeated), `snapshot: meta: entry 1: key "k1" is not after "k1"`},
		{"meta empty key", withLen(metaEmptyKey), `snapshot: invalid: meta: empty key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(bytes.NewReader(tc.in), Limits{})
			checkDecodeError(t, err, tc.want)
		})
	}

	// Data after the zstd frame, within the compressed length.
	data := frame(t, s.ModuleHash, good, uint64(len(good)))
	hdr, comp := data[:headerSize], data[headerSize:len(data)-checksumSize]
	var buf bytes.Buffer
	if err := writeFrame(&buf, [32]byte(hdr[hashOffset:bodyLenOffset]), uint64(len(good)), append(bytes.Clone(comp), "junk"...)); err != nil {
		t.Fatal(err)
	}
	_, err := Decode(&buf, Limits{})
	checkDecodeError(t, err, "snapshot: compressed body: ")
}

func TestCheckModule(t *testing.T) {
	s := richSnapshot()
	if err := s.CheckModule(sha256.Sum256(testModule())); err != nil {
		t.Errorf("CheckModule(its own module): %v", err)
	}
	other := sha256.Sum256([]byte("another module"))
	err := s.CheckModule(other)
	want := "snapshot: taken from module sha256:" + hexPrefix(s.ModuleHash) + "…, not sha256:" + hexPrefix(other) + "…"
	if err == nil || err.Error() != want {
		t.Errorf("CheckModule(another module): error %v, want %s", err, want)
	}
	// Hashes that share their first 12 hex digits are shown in full.
	near := s.ModuleHash
	near[31] ^= 1
	err = s.CheckModule(near)
	if err == nil || !strings.Contains(err.Error(), hexFull(near)) {
		t.Errorf("CheckModule(a hash differing in its last byte): error %v, want the full hash", err)
	}
}

func hexFull(h [32]byte) string   { return hex.EncodeToString(h[:]) }
func hexPrefix(h [32]byte) string { return hexFull(h)[:12] }

// limitCase is a decode of a snapshot under lim, which fails with an
// error containing want ("": succeeds).
type limitCase struct {
	name string
	lim  Limits
	want string
}

// checkLimits decodes data under each case's limits.
func checkLimits(t *testing.T, data []byte, cases []limitCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(bytes.NewReader(data), tc.lim)
			if tc.want == "" {
				if err != nil {
					t.Errorf("Decode: %v", err)
				}
				return
			}
			checkDecodeError(t, err, tc.want)
		})
	}
}
