package snapshot

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/klauspost/compress/zstd"
)

// newBodyWriter compresses a snapshot's body into w as Encode does.
func newBodyWriter(w io.Writer) (*zstd.Encoder, error) {
	return zstd.NewWriter(w,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithWindowSize(writeWindow),
		zstd.WithEncoderConcurrency(1),
		// The SHA-256 checksum covers the compressed body.
		zstd.WithEncoderCRC(false))
}

// Encode writes s to w in the portable snapshot format, version Version
// (docs/snapshot-format.md). It refuses a snapshot that is not valid
// (Validate). The body is compressed in memory before anything is written,
// since the header holds its compressed length: Encode needs memory for
// the compressed snapshot besides s.
func Encode(w io.Writer, s *Snapshot) error {
	if err := s.Validate(); err != nil {
		return err
	}
	var comp chunks
	zw, err := newBodyWriter(&comp)
	if err != nil {
		return fmt.Errorf("snapshot: zstd: %w", err)
	}
	bodyLen, err := writeBody(zw, s)
	if cerr := zw.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("snapshot: zstd: %w", cerr)
	}
	if err != nil {
		return err
	}
	return writeFrame(w, s.ModuleHash, bodyLen, comp.bufs...)
}

// chunks keeps what is written to it in chunks of chunkSize bytes.
// Unlike a bytes.Buffer, it never copies what it holds to grow: for a
// snapshot of tens of MiB, the copies and fresh pages of a doubling
// buffer cost as much as compressing it.
type chunks struct{ bufs [][]byte }

const chunkSize = 1 << 20

func (c *chunks) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(c.bufs) == 0 || len(c.bufs[len(c.bufs)-1]) == chunkSize {
			c.bufs = append(c.bufs, make([]byte, 0, chunkSize))
		}
		last := &c.bufs[len(c.bufs)-1]
		k := min(len(p), chunkSize-len(*last))
		*last = append(*last, p[:k]...)
		p = p[k:]
	}
	return n, nil
}

// writeFrame writes a whole snapshot to w: the header, the compressed
// body (of an uncompressed body of bodyLen bytes), which is the
// concatenation of comp, and the checksum.
func writeFrame(w io.Writer, moduleHash [32]byte, bodyLen uint64, comp ...[]byte) error {
	var compLen uint64
	for _, b := range comp {
		compLen += uint64(len(b))
	}
	hdr := make([]byte, 0, headerSize)
	hdr = append(hdr, Magic...)
	hdr = binary.LittleEndian.AppendUint32(hdr, Version)
	hdr = append(hdr, moduleHash[:]...)
	hdr = binary.LittleEndian.AppendUint64(hdr, bodyLen)
	hdr = binary.LittleEndian.AppendUint64(hdr, compLen)
	h := sha256.New()
	h.Write(hdr)
	for _, b := range comp {
		h.Write(b)
	}
	parts := append(append([][]byte{hdr}, comp...), h.Sum(nil))
	for _, b := range parts {
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("snapshot: write: %w", err)
		}
	}
	return nil
}

// writeBody writes the uncompressed body of s to w and returns its length.
func writeBody(w io.Writer, s *Snapshot) (uint64, error) {
	e := &bodyWriter{w: bufio.NewWriterSize(w, 64<<10)}

	if s.Module == nil {
		e.u8(0)
	} else {
		e.u8(1)
		e.blob(s.Module)
	}

	keys := slices.Sorted(maps.Keys(s.Meta))
	e.u32(uint32(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.str(s.Meta[k])
	}

	e.u32(uint32(len(s.Globals)))
	for _, g := range s.Globals {
		e.u8(uint8(g.Type))
		switch g.Type {
		case I32, F32:
			e.u32(uint32(g.Value))
		default:
			e.u64(g.Value)
		}
	}

	e.u32(s.Stack.DataAddr)
	e.u32(s.Stack.Start)
	e.u32(s.Stack.End)

	ws := &s.WASI
	e.strList(ws.Args)
	e.strList(ws.Env)
	e.u64(ws.MonotonicNanos)
	e.blob(ws.Stdout)
	e.blob(ws.Stderr)
	e.u32(ws.NextFD)
	e.u32(uint32(len(ws.Preopens)))
	for _, p := range ws.Preopens {
		e.u32(p.FD)
		e.str(p.GuestPath)
		e.u32(uint32(len(p.Files)))
		for _, f := range p.Files {
			e.str(f.Path)
			e.u8(uint8(f.Type))
			e.u32(f.Mode)
			e.u64(uint64(f.ModTimeNanos))
			e.blob(f.Data)
		}
	}
	e.u32(uint32(len(ws.FDs)))
	for _, fd := range ws.FDs {
		e.u32(fd.FD)
		e.u8(uint8(fd.Kind))
		e.u32(fd.Preopen)
		e.str(fd.Path)
		e.u64(fd.Offset)
		e.u16(fd.Flags)
		var access uint8
		if fd.Read {
			access |= accessRead
		}
		if fd.Write {
			access |= accessWrite
		}
		e.u8(access)
		e.u64(fd.RightsBase)
		e.u64(fd.RightsInheriting)
	}

	e.memory(s.Memory)

	if e.err == nil {
		e.err = e.w.Flush()
	}
	if e.err != nil {
		return 0, fmt.Errorf("snapshot: write body: %w", e.err)
	}
	return e.n, nil
}

// memory writes linear memory: its size in pages, the runs of pages that
// are not all zeros, then the contents of those runs.
func (e *bodyWriter) memory(mem []byte) {
	runs := memoryRuns(mem)
	e.u32(uint32(len(mem) / PageSize))
	e.u32(uint32(len(runs)))
	for _, r := range runs {
		e.u32(r.first)
		e.u32(r.count)
	}
	for _, r := range runs {
		e.write(mem[int(r.first)*PageSize : int(r.first+r.count)*PageSize])
	}
}

// run is a run of consecutive memory pages.
type run struct {
	first, count uint32
}

// memoryRuns returns the maximal runs of pages of mem that are not all
// zeros, in ascending order.
func memoryRuns(mem []byte) []run {
	zero := make([]byte, PageSize)
	var runs []run
	for p := 0; p*PageSize < len(mem); p++ {
		if bytes.Equal(mem[p*PageSize:(p+1)*PageSize], zero) {
			continue
		}
		if n := len(runs); n > 0 && runs[n-1].first+runs[n-1].count == uint32(p) {
			runs[n-1].count++
		} else {
			runs = append(runs, run{first: uint32(p), count: 1})
		}
	}
	return runs
}

// bodyWriter writes the fields of a body, counting its bytes. After an
// error it writes nothing more, and err holds the error.
type bodyWriter struct {
	w   *bufio.Writer
	n   uint64
	err error
	buf [8]byte
}

func (e *bodyWriter) write(p []byte) {
	if e.err != nil {
		return
	}
	n, err := e.w.Write(p)
	e.n += uint64(n)
	e.err = err
}

func (e *bodyWriter) u8(v uint8) {
	e.buf[0] = v
	e.write(e.buf[:1])
}

func (e *bodyWriter) u16(v uint16) {
	binary.LittleEndian.PutUint16(e.buf[:], v)
	e.write(e.buf[:2])
}

func (e *bodyWriter) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], v)
	e.write(e.buf[:4])
}

func (e *bodyWriter) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], v)
	e.write(e.buf[:8])
}

// str writes a string: its length as a uint32, then its bytes.
func (e *bodyWriter) str(s string) {
	e.u32(uint32(len(s)))
	if e.err != nil {
		return
	}
	n, err := e.w.WriteString(s)
	e.n += uint64(n)
	e.err = err
}

// strList writes a list of strings: their count as a uint32, then each.
func (e *bodyWriter) strList(list []string) {
	e.u32(uint32(len(list)))
	for _, s := range list {
		e.str(s)
	}
}

// blob writes a byte string: its length as a uint64, then its bytes.
func (e *bodyWriter) blob(b []byte) {
	e.u64(uint64(len(b)))
	e.write(b)
}
