package dock

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
)

// nopCloser is a bytes.Buffer the batch writer can close.
type nopCloser struct{ bytes.Buffer }

func (*nopCloser) Close() error { return nil }

// writeBatches writes data in writes of the given sizes and closes.
func writeBatches(t *testing.T, data []byte, sizes []int, corrupt bool) []byte {
	t.Helper()
	var out nopCloser
	w := &batchWriter{w: &out, corrupt: corrupt}
	for _, n := range sizes {
		if _, err := w.Write(data[:n]); err != nil {
			t.Fatal(err)
		}
		data = data[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestPageBatches checks that a page stream arrives whole and that any
// damage to it is caught before its bytes are passed on: a flipped bit
// anywhere, a stream cut at any byte, a batch dropped.
func TestPageBatches(t *testing.T) {
	data := make([]byte, 3*maxPageBatch+12345)
	rand.New(rand.NewSource(1)).Read(data)
	sizes := []int{1, 4096, 32 << 10, 2 * maxPageBatch, len(data) - 1 - 4096 - 32<<10 - 2*maxPageBatch}
	stream := writeBatches(t, data, sizes, false)

	got, err := io.ReadAll(&batchReader{r: bytes.NewReader(stream)})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("a whole stream: %d bytes, %v; want the %d bytes written", len(got), err, len(data))
	}

	damaged := func(what string, s []byte) {
		t.Helper()
		r := &batchReader{r: bytes.NewReader(s)}
		var passed []byte
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			passed = append(passed, buf[:n]...)
			if err == nil {
				continue
			}
			if !errors.Is(err, ErrPageStream) {
				t.Fatalf("%s: %v, want ErrPageStream", what, err)
			}
			break
		}
		if !bytes.Equal(passed, data[:len(passed)]) {
			t.Fatalf("%s: damaged bytes were passed on", what)
		}
	}
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 50; i++ {
		s := bytes.Clone(stream)
		bit := rng.Intn(len(s) * 8)
		s[bit/8] ^= 1 << (bit % 8)
		damaged("bit flipped", s)
		damaged("cut", stream[:rng.Intn(len(stream))])
	}
	// The second batch dropped: the first is 1 byte, the second 4096.
	second := batchHeaderSize + 1
	damaged("batch dropped", append(bytes.Clone(stream[:second]), stream[second+batchHeaderSize+4096:]...))
	damaged("corrupted by the sender's fault injection", writeBatches(t, data, sizes, true))

	// A writer that fails ends the stream without its empty batch.
	var out nopCloser
	w := &batchWriter{w: &out}
	w.Write(data[:100])
	w.CloseWithError(errors.New("CRIU died"))
	damaged("ended by an error", out.Bytes())
}
