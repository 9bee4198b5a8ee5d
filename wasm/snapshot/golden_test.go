package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"reflect"
	"testing"
)

// goldenFile is a snapshot encoded when format version 1 was defined, of
// richSnapshot(). It is frozen: no test writes it, and goldenSHA256 pins
// it, so that it can never be regenerated from the code it checks.
// spec_test.go also decodes it with a reader written from the format's
// specification.
const goldenFile = "testdata/golden-v1.snap"

// goldenSHA256 is the SHA-256 of goldenFile.
const goldenSHA256 = "91db68fc6f437dda17d4997d335564e7bc75511933148fbf3a451ab98e60888a"

// TestGolden decodes goldenFile and compares it with the snapshot it was
// encoded from: Decode still reads what podctl wrote then. Since the
// golden file is little-endian bytes on disk, running this test on a
// big-endian host (s390x) proves that decoding does not depend on the
// host's byte order.
//
// It also checks that Encode still writes the same header and the same
// uncompressed body (the compressed bytes may change with the zstd
// library; the format does not fix them).
func TestGolden(t *testing.T) {
	data, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != goldenSHA256 {
		t.Fatalf("%s has changed (SHA-256 %x, want %s): it is frozen, restore it with git", goldenFile, sum, goldenSHA256)
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
