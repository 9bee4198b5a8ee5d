package dock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync/atomic"
)

// The pages a page tunnel carries from the source are checked end to end:
// the source cuts what its CRIU writes into batches, each sent with its
// length and the CRC-32C of the whole stream up to its end, and ends the
// stream with an empty batch; the dock passes a batch on to its CRIU
// helper only once its checksum holds, and calls a stream that ends
// without the empty batch truncated. Since each checksum covers all the
// bytes before it, a batch lost, repeated or reordered is caught as well
// as a flipped bit. TLS already
// protects the bytes on the wire; the checksums catch what goes wrong
// between the two CRIUs (a relay that drops, repeats or reorders bytes),
// before a pod runs with it, the way the archive's checksums do for what
// travels in the archive.

// ErrPageStream is the error of a page stream that arrives damaged.
var ErrPageStream = errors.New("page stream damaged")

// maxPageBatch bounds a batch: a larger write is cut into several.
const maxPageBatch = 1 << 20

// batchHeaderSize is the size of a batch's header: its length and the
// CRC-32C (Castagnoli) of the stream to its end, little-endian.
const batchHeaderSize = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// batchWriter writes a page stream's batches to w.
type batchWriter struct {
	w io.WriteCloser
	// sent, if set, counts the bytes written (headers not included).
	sent *atomic.Int64
	// corrupt, for a fault test, flips a bit of each batch after its
	// checksum is taken.
	corrupt bool
	buf     []byte
	crc     uint32 // of the stream so far
}

func (b *batchWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), maxPageBatch)
		if err := b.batch(p[:n]); err != nil {
			return written, err
		}
		written += n
		if b.sent != nil {
			b.sent.Add(int64(n))
		}
		p = p[n:]
	}
	return written, nil
}

func (b *batchWriter) batch(p []byte) error {
	if cap(b.buf) < batchHeaderSize+len(p) {
		b.buf = make([]byte, batchHeaderSize+len(p))
	}
	buf := b.buf[:batchHeaderSize+len(p)]
	binary.LittleEndian.PutUint32(buf, uint32(len(p)))
	b.crc = crc32.Update(b.crc, castagnoli, p)
	binary.LittleEndian.PutUint32(buf[4:], b.crc)
	copy(buf[batchHeaderSize:], p)
	if b.corrupt && len(p) > 0 {
		buf[batchHeaderSize+len(p)/2] ^= 0x10
	}
	_, err := b.w.Write(buf)
	return err
}

// CloseWithError ends the stream: with err nil, by the empty batch that
// says it is complete; otherwise by closing w without it (with err, if w
// can carry one), so that the dock sees the stream truncated.
func (b *batchWriter) CloseWithError(err error) error {
	if err == nil {
		if err := b.batch(nil); err != nil {
			b.w.Close()
			return err
		}
		return b.w.Close()
	}
	if c, ok := b.w.(interface{ CloseWithError(error) error }); ok {
		return c.CloseWithError(err)
	}
	return b.w.Close()
}

// Close ends the stream complete.
func (b *batchWriter) Close() error { return b.CloseWithError(nil) }

// batchReader reads a page stream's batches from r, checks them, and
// returns their bytes; it returns io.EOF after the empty batch, and an
// error wrapping ErrPageStream for a damaged or truncated stream.
type batchReader struct {
	r       io.Reader
	pending []byte // the rest of the current batch, checked
	batches int
	buf     []byte
	done    bool
	crc     uint32 // of the stream so far
}

func (b *batchReader) Read(p []byte) (int, error) {
	for len(b.pending) == 0 {
		if b.done {
			return 0, io.EOF
		}
		if err := b.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

// next reads and checks the next batch.
func (b *batchReader) next() error {
	var hdr [batchHeaderSize]byte
	if _, err := io.ReadFull(b.r, hdr[:]); err != nil {
		return b.cut(err)
	}
	n, sum := binary.LittleEndian.Uint32(hdr[:]), binary.LittleEndian.Uint32(hdr[4:])
	if n == 0 {
		if sum != b.crc {
			return fmt.Errorf("%w: the stream's %d batches have CRC-32C %08x, its sender's %08x", ErrPageStream, b.batches, b.crc, sum)
		}
		b.done = true
		return nil
	}
	if n > maxPageBatch {
		return fmt.Errorf("%w: batch %d claims %d bytes (at most %d)", ErrPageStream, b.batches, n, maxPageBatch)
	}
	if cap(b.buf) < int(n) {
		b.buf = make([]byte, n)
	}
	data := b.buf[:n]
	if _, err := io.ReadFull(b.r, data); err != nil {
		return b.cut(err)
	}
	crc := crc32.Update(b.crc, castagnoli, data)
	if crc != sum {
		return fmt.Errorf("%w: the stream to the end of batch %d (%d bytes) has CRC-32C %08x, its sender's %08x", ErrPageStream, b.batches, n, crc, sum)
	}
	b.crc = crc
	b.batches++
	b.pending = data
	return nil
}

// cut is the error of a stream that ends (or fails) before its empty
// batch.
func (b *batchReader) cut(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated after %d batches", ErrPageStream, b.batches)
	}
	return err
}
