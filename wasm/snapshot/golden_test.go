package snapshot

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden-v1.snap and the FuzzDecode seed corpus")

const goldenFile = "testdata/golden-v1.snap"

// TestGolden decodes a snapshot encoded when format version 1 was defined
// and compares it with the snapshot it was encoded from: Decode still
// reads what podctl wrote then. Since the golden file is little-endian
// bytes on disk, running this test on a big-endian host (s390x) proves
// that decoding does not depend on the host's byte order.
//
// It also checks that Encode still writes the same header and the same
// uncompressed body (the compressed bytes may change with the zstd
// library; the format does not fix them).
func TestGolden(t *testing.T) {
	if *update {
		if err := os.MkdirAll(filepath.Dir(goldenFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenFile, encode(t, richSnapshot()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update to create it, once)", err)
	}
	want := richSnapshot()
	got, err := Decode(bytes.NewReader(data), Limits{})
	if err != nil {
		t.Fatalf("Decode(%s): %v", goldenFile, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode(%s) differs from richSnapshot():\n got %+v\nwant %+v", goldenFile, got, want)
	}

	goldenHdr, goldenBody := unframe(t, data)
	hdr, b := unframe(t, encode(t, want))
	if !bytes.Equal(hdr[:compLenOffset], goldenHdr[:compLenOffset]) {
		t.Errorf("Encode writes the header\n%x\nthe golden file has\n%x", hdr[:compLenOffset], goldenHdr[:compLenOffset])
	}
	if !bytes.Equal(b, goldenBody) {
		t.Errorf("Encode writes a body (%d bytes) other than the golden file's (%d bytes)", len(b), len(goldenBody))
	}
}
