package snapshot

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/podctl/podctl/internal/errdefs"
)

// stringBomb returns a snapshot whose body declares count arguments of
// 64 KiB each and holds the first n of them, each compressed to about 17
// bytes. Its checksum is correct; its body ends early. With count 1<<20
// (64 GiB: as many arguments, and as long, as MaxEntries and
// MaxStringBytes allow by default) it is the bomb of the security review,
// which measured a snapshot of 71,801 bytes (n about 4100) decoding to
// 260 MiB.
func stringBomb(t testing.TB, count uint32, n int) []byte {
	t.Helper()
	var comp bytes.Buffer
	zw, err := newBodyWriter(&comp)
	if err != nil {
		t.Fatal(err)
	}
	// No module, meta or globals, the stack, then the arguments.
	zw.Write(cat([]byte{0}, le32(0), le32(0), make([]byte, 12), le32(count)))
	arg := cat(le32(64<<10), bytes.Repeat([]byte{'a'}, 64<<10))
	for range n {
		zw.Write(arg)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeFrame(&buf, [32]byte{}, 1<<40, comp.Bytes()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestStringBomb checks that the strings of a snapshot cannot make Decode
// allocate more than the default limits allow: MaxRecordBytes (64 MiB)
// stops the bomb, which made Decode allocate 261 MiB when nothing bounded
// the strings in all.
func TestStringBomb(t *testing.T) {
	data := stringBomb(t, 1<<20, 4100)
	const bound = 80 << 20 // MaxRecordBytes' default, and Decode's own buffers
	var err error
	n := allocated(func() { _, err = Decode(bytes.NewReader(data), DefaultLimits()) })
	t.Logf("a %d-byte snapshot: Decode allocated %.1f MiB", len(data), float64(n)/(1<<20))
	checkDecodeError(t, err, "snapshot: wasi: arg 768: 65536 more bytes of entries and strings exceed the limit of 67108864 (MaxRecordBytes)")
	if n > bound {
		t.Errorf("Decode allocated %d bytes for a %d-byte snapshot, more than %d", n, len(data), bound)
	}
}

// TestTotalBudget checks that MaxTotalBytes bounds what Decode allocates
// for a snapshot whose every other limit is generous.
func TestTotalBudget(t *testing.T) {
	data := stringBomb(t, 1<<20, 4100)
	const budget = 8 << 20
	lim := Limits{MaxRecordBytes: 1 << 40, MaxTotalBytes: budget}
	var err error
	n := allocated(func() { _, err = Decode(bytes.NewReader(data), lim) })
	t.Logf("a %d-byte snapshot with a %d-byte budget: Decode allocated %.1f MiB", len(data), budget, float64(n)/(1<<20))
	checkDecodeError(t, err, "snapshot: wasi: 16777216 more bytes exceed the budget of 8388608 (MaxTotalBytes)")
	if n > 2*budget {
		t.Errorf("Decode allocated %d bytes for a %d-byte snapshot, more than twice its budget", n, len(data))
	}

	// Fewer arguments fit the count, then run out of budget one string
	// at a time.
	lim.MaxTotalBytes = 1 << 40
	lim.MaxRecordBytes = budget
	small := stringBomb(t, 1000, 1000)
	n = allocated(func() { _, err = Decode(bytes.NewReader(small), lim) })
	t.Logf("a %d-byte snapshot with %d bytes for entries and strings: Decode allocated %.1f MiB", len(small), budget, float64(n)/(1<<20))
	checkDecodeError(t, err, "snapshot: wasi: arg 127: 65536 more bytes of entries and strings exceed the limit of 8388608 (MaxRecordBytes)")
	if n > 2*budget+(10<<20) {
		t.Errorf("Decode allocated %d bytes for a %d-byte snapshot, more than twice its budget and its own buffers", n, len(small))
	}
}

// recordBytes returns what s charges against MaxRecordBytes.
func recordBytes(s *Snapshot) int64 {
	n := uint64(len(s.Meta))*metaSize + uint64(len(s.Globals))*globalSize
	strs := func(list ...string) {
		for _, x := range list {
			n += uint64(len(x))
		}
	}
	for k, v := range s.Meta {
		strs(k, v)
	}
	w := &s.WASI
	n += uint64(len(w.Args)+len(w.Env)) * strSize
	strs(w.Args...)
	strs(w.Env...)
	n += uint64(len(w.Preopens)) * preopenSize
	for _, p := range w.Preopens {
		strs(p.GuestPath)
		n += uint64(len(p.Files)) * fileSize
		for _, f := range p.Files {
			strs(f.Path)
		}
	}
	n += uint64(len(w.FDs)) * fdSize
	for _, fd := range w.FDs {
		strs(fd.Path)
	}
	return int64(n)
}

// TestBudgetsExact checks that MaxRecordBytes and MaxTotalBytes charge
// exactly what they document.
func TestBudgetsExact(t *testing.T) {
	s := richSnapshot()
	data := encode(t, s)
	records := recordBytes(s)
	total := records + int64(len(s.Memory)) + int64(len(memoryRuns(s.Memory)))*int64(runMemSize) +
		int64(len(s.Module)) + int64(len(s.WASI.Stdout)) + int64(len(s.WASI.Stderr))
	for _, p := range s.WASI.Preopens {
		for _, f := range p.Files {
			total += int64(len(f.Data))
		}
	}
	checkLimits(t, data, []limitCase{
		{"records fit", Limits{MaxRecordBytes: records}, ""},
		{"records", Limits{MaxRecordBytes: records - 1}, "(MaxRecordBytes)"},
		{"total fits", Limits{MaxTotalBytes: total}, ""},
		{"total", Limits{MaxTotalBytes: total - 1}, "snapshot: memory: "},
		{"total before the memory", Limits{MaxTotalBytes: total - int64(len(s.Memory))}, "(MaxTotalBytes)"},
	})
}

func TestDefaultLimits(t *testing.T) {
	d := DefaultLimits()
	want := Limits{
		MaxMemoryBytes: 4 << 30,
		MaxModuleBytes: 256 << 20,
		MaxFileBytes:   1 << 30,
		MaxEntries:     1 << 20,
		MaxStringBytes: 64 << 10,
		MaxRecordBytes: int64(fdSize) << 20, // 64 MiB on a 64-bit host
		MaxTotalBytes:  4<<30 + 65536*int64(runMemSize) + 256<<20 + 1<<30 + int64(fdSize)<<20,
	}
	if d != want {
		t.Errorf("DefaultLimits() = %+v, want %+v", d, want)
	}
	if (Limits{}).withDefaults() != d {
		t.Errorf("Limits{}.withDefaults() = %+v, want DefaultLimits()", (Limits{}).withDefaults())
	}
	// The budgets derive from the limits set.
	l := Limits{MaxMemoryBytes: PageSize, MaxModuleBytes: 1, MaxFileBytes: 2, MaxEntries: 10}.withDefaults()
	if rec := 10 * int64(fdSize); l.MaxRecordBytes != rec || l.MaxTotalBytes != PageSize+int64(runMemSize)+1+2+rec {
		t.Errorf("derived budgets %d, %d; want %d, %d", l.MaxRecordBytes, l.MaxTotalBytes, rec, PageSize+int64(runMemSize)+1+2+rec)
	}
	// and saturate.
	if l := (Limits{MaxMemoryBytes: 1 << 62, MaxFileBytes: 1 << 62}).withDefaults(); l.MaxTotalBytes != 1<<63-1 {
		t.Errorf("MaxTotalBytes = %d, want it saturated", l.MaxTotalBytes)
	}
}

// reserver stands in for a dock's memory budget: it records what is
// reserved and refuses past max.
type reserver struct {
	max, reserved int64
}

func (r *reserver) Reserve(n int64) error {
	if r.reserved+n > r.max {
		return errdefs.New(errdefs.Busy, "dock busy: memory budget of %d MiB in use", r.max>>20)
	}
	r.reserved += n
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestDecodeReserving checks that DecodeReserving reserves its buffers
// and exactly what it charges against MaxTotalBytes, and that a refused
// reservation ends the decode at once with the refusal, which keeps its
// class, rather than an InvalidImage error after reading the whole input.
func TestDecodeReserving(t *testing.T) {
	s := richSnapshot()
	data := encode(t, s)
	r := &reserver{max: 1 << 40}
	if _, err := DecodeReserving(bytes.NewReader(data), Limits{}, r); err != nil {
		t.Fatal(err)
	}
	charged := r.reserved - DecodeBuffers
	for _, tc := range []struct {
		name string
		lim  Limits
	}{{"charged fits", Limits{MaxTotalBytes: charged}}, {"charged less one", Limits{MaxTotalBytes: charged - 1}}} {
		_, err := Decode(bytes.NewReader(data), tc.lim)
		if (err == nil) != (tc.lim.MaxTotalBytes == charged) {
			t.Errorf("%s: Decode = %v; DecodeReserving reserved %d besides its buffers, which should be exactly what MaxTotalBytes charges", tc.name, err, charged)
		}
		if err != nil && !errors.Is(err, ErrOverBudget) {
			t.Errorf("%s: %v does not wrap ErrOverBudget", tc.name, err)
		}
	}

	// Refused before the memory, which comes last.
	r = &reserver{max: DecodeBuffers + charged - int64(len(s.Memory))}
	in := &countingReader{r: bytes.NewReader(data)}
	_, err := DecodeReserving(in, Limits{}, r)
	if !errdefs.Is(err, errdefs.Busy) || err == nil || !strings.HasPrefix(err.Error(), "snapshot: memory: dock busy: memory budget of ") {
		t.Fatalf("a refused reservation: %v (kind %d)", err, errdefs.KindOf(err))
	}
	if in.n == len(data) {
		t.Error("Decode read the whole input after a refused reservation")
	}
	// Refused before anything is read.
	in = &countingReader{r: bytes.NewReader(data)}
	if _, err := DecodeReserving(in, Limits{}, &reserver{max: DecodeBuffers - 1}); !errdefs.Is(err, errdefs.Busy) || in.n != 0 {
		t.Fatalf("a refused reservation of the buffers: %v after reading %d bytes", err, in.n)
	}
}

// TestDecodeReservingBomb checks that a small snapshot declaring a large
// memory allocates nothing of it when its reservation is refused.
func TestDecodeReservingBomb(t *testing.T) {
	s := richSnapshot()
	s.Memory = append(s.Memory, make([]byte, 256<<20)...) // zero pages: not encoded
	data := encode(t, s)
	var err error
	n := allocated(func() { _, err = DecodeReserving(bytes.NewReader(data), Limits{}, &reserver{max: 64 << 20}) })
	t.Logf("a %d-byte snapshot of %d MiB of memory, refused: Decode allocated %.1f MiB", len(data), len(s.Memory)>>20, float64(n)/(1<<20))
	if !errdefs.Is(err, errdefs.Busy) {
		t.Fatalf("got %v", err)
	}
	if n > DecodeBuffers {
		t.Errorf("Decode allocated %d bytes, more than its buffers", n)
	}
}
