package vesselpod

import (
	"bytes"
	"os"
	"reflect"
	"runtime"
	"testing"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/wasm/snapshot"
)

// TestDecodeSnapshotKeepsEncoding checks that DecodeSnapshot returns the
// very bytes it decoded, which a restored supervisor then resumes from.
func TestDecodeSnapshotKeepsEncoding(t *testing.T) {
	const golden = "../../wasm/snapshot/testdata/golden-v1.snap"
	data, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	want, err := snapshot.Decode(bytes.NewReader(data), snapshot.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	snap, encoded, err := ReadSnapshot(golden, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encoded, data) {
		t.Errorf("kept %d bytes, not the file's %d", len(encoded), len(data))
	}
	if !reflect.DeepEqual(snap, want) {
		t.Error("DecodeSnapshot decoded another snapshot than snapshot.Decode")
	}
	for _, size := range []int64{0, int64(len(data)) / 2} { // unknown, wrong
		if _, encoded, err := DecodeSnapshot(bytes.NewReader(data), size, RestoreOptions{}); err != nil || !bytes.Equal(encoded, data) {
			t.Errorf("size %d: kept %d bytes of %d (%v)", size, len(encoded), len(data), err)
		}
	}
	if _, _, err := DecodeSnapshot(bytes.NewReader(data[:len(data)-1]), int64(len(data)), RestoreOptions{}); err == nil {
		t.Error("a truncated snapshot decoded")
	}
}

// TestKeptBytesCap checks that an encoding larger than the cap is not
// kept at all (the restore then encodes the snapshot again), rather than
// kept in part.
func TestKeptBytesCap(t *testing.T) {
	big := newKeptBytes(10, 11, 11, nil)
	big.Write([]byte("a"))
	if big.bytes() != nil {
		t.Fatal("kept bytes of an input announced larger than the cap")
	}
	k := newKeptBytes(10, 0, 0, nil)
	for _, p := range []string{"abcd", "efgh", "ij"} {
		if n, err := k.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	if got := string(k.bytes()); got != "abcdefghij" {
		t.Fatalf("kept %q at the cap", got)
	}
	for _, p := range []string{"k", "l"} {
		if n, err := k.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	if got := k.bytes(); got != nil {
		t.Fatalf("kept %q past the cap", got)
	}
}

// TestKeptBytesGrowth checks that keptBytes grows as bytes arrive, to at
// most twice what it holds, and ends at exactly the size expected.
func TestKeptBytesGrowth(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 200_000) // 3.2 MB
	for _, tc := range []struct {
		name          string
		size, presize int64
		wantCap       int // 0: any
	}{
		{"expected", int64(len(data)), keptPresize, len(data)},
		{"expected, presized", int64(len(data)), int64(len(data)), len(data)},
		{"unknown", 0, keptPresize, 0},
		{"claimed too small", 1000, keptPresize, 0},
		{"claimed too large", 256 << 20, keptPresize, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKeptBytes(maxKeptEncoding, tc.size, tc.presize, nil)
			for i := 0; i < len(data); i += 10_000 {
				k.Write(data[i:min(i+10_000, len(data))])
				if c, held := cap(k.buf), len(k.buf); c > max(2*held, keptGrowMin, int(min(tc.size, tc.presize))) {
					t.Fatalf("holding %d bytes in a buffer of %d", held, c)
				}
			}
			if !bytes.Equal(k.bytes(), data) {
				t.Fatal("kept other bytes than those written")
			}
			if tc.wantCap != 0 && cap(k.buf) != tc.wantCap {
				t.Errorf("ended with a buffer of %d bytes, want %d", cap(k.buf), tc.wantCap)
			}
		})
	}
}

// TestDecodeSnapshotClaimNotAllocated checks that DecodeSnapshot does
// not allocate the size a peer claims (its Content-Length, up to
// maxKeptEncoding) before the bytes arrive.
func TestDecodeSnapshotClaimNotAllocated(t *testing.T) {
	data, err := os.ReadFile("../../wasm/snapshot/testdata/golden-v1.snap")
	if err != nil {
		t.Fatal(err)
	}
	const claim = maxKeptEncoding
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, encoded, err := DecodeSnapshot(bytes.NewReader(data), claim, RestoreOptions{})
	runtime.ReadMemStats(&after)
	if err != nil || !bytes.Equal(encoded, data) {
		t.Fatalf("kept %d bytes of %d (%v)", len(encoded), len(data), err)
	}
	n := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d-byte snapshot announced as %d bytes: DecodeSnapshot allocated %.1f MiB", len(data), claim, float64(n)/(1<<20))
	// The decoded snapshot (6 pages of memory), the decoder's buffers and
	// window, and keptPresize.
	if n > 16<<20 {
		t.Errorf("DecodeSnapshot allocated %d bytes, more than 16 MiB", n)
	}
}

// recorder stands in for a dock's budget: it records what is reserved
// and refuses past max.
type recorder struct{ max, reserved int64 }

func (r *recorder) Reserve(n int64) error {
	if r.reserved+n > r.max {
		return errdefs.New(errdefs.Busy, "dock busy: budget of %d bytes in use", r.max)
	}
	r.reserved += n
	return nil
}

// TestDecodeSnapshotReserves checks that DecodeSnapshot reserves what it
// allocates, the bytes it keeps included, and fails when refused.
func TestDecodeSnapshotReserves(t *testing.T) {
	data, err := os.ReadFile("../../wasm/snapshot/testdata/golden-v1.snap")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{max: 1 << 40}
	var snap *snapshot.Snapshot
	n := allocatedBy(func() {
		snap, _, err = DecodeSnapshot(bytes.NewReader(data), int64(len(data)), RestoreOptions{MemoryBudget: r})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reserved %d bytes, allocated %d", r.reserved, n)
	if min := int64(readBuffer + snapshot.DecodeBuffers + len(snap.Memory) + len(data)); r.reserved < min {
		t.Errorf("reserved %d bytes, less than the buffers, memory and kept bytes (%d)", r.reserved, min)
	}
	if int64(n) > r.reserved {
		t.Errorf("allocated %d bytes, more than the %d reserved", n, r.reserved)
	}
	for _, max := range []int64{r.reserved - int64(len(data)), readBuffer} {
		_, _, err := DecodeSnapshot(bytes.NewReader(data), int64(len(data)), RestoreOptions{MemoryBudget: &recorder{max: max}})
		if !errdefs.Is(err, errdefs.Busy) {
			t.Errorf("with %d bytes: %v (kind %d), want the refusal", max, err, errdefs.KindOf(err))
		}
	}
}

// TestUnpackReserves checks that ModuleFor reserves the memory of a
// module it reads from the cache, and that Unpack reserves the snapshot
// file it writes (and, encoding again, the memory that takes), leaving
// nothing of the pod when refused.
func TestUnpackReserves(t *testing.T) {
	data, err := os.ReadFile("../../wasm/snapshot/testdata/golden-v1.snap")
	if err != nil {
		t.Fatal(err)
	}
	snap, encoded, err := DecodeSnapshot(bytes.NewReader(data), 0, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := Store{Root: t.TempDir()}
	prepared, err := s.ModuleFor(snap, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A snapshot without its module: the cache's copy is read into
	// memory, reserved first.
	bare := *snap
	bare.Module = nil
	mem := &recorder{max: 1 << 40}
	if _, err := s.ModuleFor(&bare, RestoreOptions{MemoryBudget: mem}); err != nil || mem.reserved < int64(len(snap.Module)) {
		t.Fatalf("ModuleFor from the cache reserved %d bytes for a module of %d (%v)", mem.reserved, len(snap.Module), err)
	}
	if _, err := s.ModuleFor(&bare, RestoreOptions{MemoryBudget: &recorder{max: int64(len(snap.Module)) - 1}}); !errdefs.Is(err, errdefs.Busy) {
		t.Fatalf("ModuleFor from the cache beyond the budget: %v", err)
	}
	disk := &recorder{max: int64(len(encoded)) - 1}
	_, _, _, err = s.Unpack(snap, RestoreOptions{Name: "v", Encoded: encoded, DiskBudget: disk}, prepared)
	if !errdefs.Is(err, errdefs.Busy) {
		t.Fatalf("Unpack beyond the disk budget: %v", err)
	}
	if _, err := os.Stat(s.podDir("v")); !os.IsNotExist(err) {
		t.Fatalf("a refused Unpack left the pod: %v", err)
	}
	// Encoding again reserves memory and disk for a bound of the encoding.
	mem, disk = &recorder{max: 1 << 40}, &recorder{max: 1 << 40}
	_, file, unlock, err := s.Unpack(snap, RestoreOptions{Name: "v", MemoryBudget: mem, DiskBudget: disk}, prepared)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if disk.reserved < st.Size() || mem.reserved < st.Size() {
		t.Errorf("encoding %d bytes again reserved %d bytes of disk and %d of memory", st.Size(), disk.reserved, mem.reserved)
	}
}

func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
