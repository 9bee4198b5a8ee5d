package vesselpod

import (
	"bytes"
	"os"
	"reflect"
	"testing"

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
	big := newKeptBytes(10, 11)
	big.Write([]byte("a"))
	if big.bytes() != nil {
		t.Fatal("kept bytes of an input announced larger than the cap")
	}
	k := newKeptBytes(10, 0)
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
