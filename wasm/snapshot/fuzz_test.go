package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
)

// fuzzBudget is the MaxTotalBytes of fuzzLimits.
const fuzzBudget = 2 << 20

// fuzzLimits keeps what a fuzzed input can make Decode allocate small with
// the budget alone: every other limit is the default, far above it, so
// that anything Decode allocates without charging it shows.
func fuzzLimits() Limits {
	return Limits{MaxTotalBytes: fuzzBudget}
}

// fuzzCeiling is the most one Decode of a fuzzed input may allocate, all
// told: twice its budget (a byte string or a list of entries grows as its
// bytes arrive, by doubling), plus Decode's own buffers, mostly the zstd
// window (up to 8 MiB, as the input declares).
const fuzzCeiling = 2*fuzzBudget + 10<<20

// totalAlloc returns the bytes allocated so far by the program.
func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// checkDecode decodes data, which may be anything: Decode must not panic
// or allocate more than fuzzCeiling, and a snapshot it accepts must be
// valid, encode, and decode to itself.
func checkDecode(t *testing.T, data []byte) {
	before := totalAlloc()
	s, err := Decode(bytes.NewReader(data), fuzzLimits())
	if n := totalAlloc() - before; n > fuzzCeiling {
		t.Fatalf("Decode of %d bytes allocated %d bytes, more than %d (error: %v)", len(data), n, fuzzCeiling, err)
	}
	if err != nil {
		if s != nil {
			t.Fatalf("Decode returned a snapshot and the error %v", err)
		}
		return
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Decode returned an invalid snapshot: %v", err)
	}
	var buf bytes.Buffer
	if err := Encode(&buf, s); err != nil {
		t.Fatalf("Encode(Decode(data)): %v", err)
	}
	s2, err := Decode(&buf, fuzzLimits())
	if err != nil {
		t.Fatalf("Decode(Encode(Decode(data))): %v", err)
	}
	if !reflect.DeepEqual(s, s2) {
		t.Fatalf("Decode(Encode(s)) differs from s:\n got %+v\nwant %+v", s2, s)
	}
}

// FuzzDecode decodes arbitrary input. Since a mutated input almost never
// has a matching checksum, each input is also decoded with its lengths
// and checksum repaired, so that the fuzzer reaches the compressed body.
func FuzzDecode(f *testing.F) {
	for _, s := range []*Snapshot{minimalSnapshot(), smallSnapshot()} {
		f.Add(encode(f, s))
	}
	f.Add(stringBomb(f, 1<<20, 400))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data)
		if len(data) >= headerSize+checksumSize {
			fixed := bytes.Clone(data)
			n := len(fixed) - checksumSize
			binary.LittleEndian.PutUint64(fixed[compLenOffset:], uint64(n-headerSize))
			sum := sha256.Sum256(fixed[:n])
			copy(fixed[n:], sum[:])
			checkDecode(t, fixed)
		}
	})
}

// zeroMemory returns s with its memory cleared: its body holds no page,
// so it makes a small seed for FuzzDecodeBody.
func zeroMemory(s *Snapshot) *Snapshot {
	s.Memory = make([]byte, len(s.Memory))
	return s
}

// FuzzDecodeBody decodes arbitrary uncompressed bodies, framed with a
// correct header and checksum: it reaches the body's decoder directly.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []*Snapshot{minimalSnapshot(), zeroMemory(smallSnapshot())} {
		f.Add(body(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, frame(t, [32]byte{}, b, uint64(len(b))))
	})
}

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the seed corpora of FuzzDecode and FuzzDecodeBody")

// TestWriteFuzzSeeds writes the committed seed corpora, with
// -update-seeds. They are inputs, not expectations: unlike the golden
// file, they may be rewritten from Encode.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-seeds to rewrite the seed corpora")
	}
	small := encode(t, smallSnapshot())
	v2 := bytes.Clone(small)
	binary.LittleEndian.PutUint32(v2[versionOffset:], 2)
	flipped := bytes.Clone(small)
	flipped[headerSize+len(flipped[headerSize:])/2] ^= 0x10
	badMagic := bytes.Clone(small)
	badMagic[0] = 'X'
	withModule := smallSnapshot()
	withModule.Module = []byte("\x00asm\x01\x00\x00\x00")
	withModule.ModuleHash = sha256.Sum256(withModule.Module)

	smallBody := body(t, zeroMemory(smallSnapshot()))
	badGlobal := bytes.Clone(smallBody)
	badGlobal[1+4+4] = 0x7b // the first global's type

	writeSeeds(t, "FuzzDecode", map[string][]byte{
		"valid-minimal":     encode(t, minimalSnapshot()),
		"valid-small":       small,
		"valid-with-module": encode(t, withModule),
		"valid-rich":        encode(t, richSnapshot()),
		"version-2":         v2,
		"bad-magic":         badMagic,
		"flipped-body":      flipped,
		"truncated-header":  small[:headerSize-5],
		"truncated-body":    small[:headerSize+(len(small)-headerSize)/2],
		"no-checksum":       small[:len(small)-checksumSize],
		"trailing-data":     append(bytes.Clone(small), 0),
		"string-bomb":       stringBomb(t, 1<<20, 400),
	})
	writeSeeds(t, "FuzzDecodeBody", map[string][]byte{
		"minimal":         body(t, minimalSnapshot()),
		"small":           smallBody,
		"with-module":     body(t, zeroMemory(withModule)),
		"bad-global-type": badGlobal,
		"cut-short":       smallBody[:len(smallBody)/2],
	})
}

// writeSeeds replaces the seed corpus of the fuzz test name.
func writeSeeds(t *testing.T, name string, seeds map[string][]byte) {
	dir := filepath.Join("testdata", "fuzz", name)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for file, data := range seeds {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%+q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
