package checkpoint

import (
	"archive/tar"
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/virtns"
)

// Compression is how an archive is compressed.
type Compression string

// The compressions a Writer supports.
const (
	// CompressionZstd wraps the tar stream in zstd.
	CompressionZstd Compression = "zstd"
	// CompressionNone writes a plain tar stream.
	CompressionNone Compression = "none"
)

// ParseCompression parses a compression name, "zstd" or "none".
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case CompressionZstd, CompressionNone:
		return c, nil
	}
	return "", errdefs.New(errdefs.InvalidArgument, "invalid compression %q (want zstd or none)", s)
}

// File contents are streamed through copyBufs buffers of copyBufSize
// bytes.
const (
	copyBufSize = 512 << 10
	copyBufs    = 4
)

// Writer writes a checkpoint archive in one pass: the manifest (by
// NewWriter), then the CRIU images, then the upper layer, then the
// checksums (by Close). Its methods must be called in that order, from one
// goroutine, except BytesWritten, which any goroutine may call (to report
// progress). After an error the archive is unusable; Close must still be
// called to release the compressor.
type Writer struct {
	out   *countingWriter
	bw    *bufio.Writer // CompressionNone: batches the small tar header writes
	zw    *zstd.Encoder // CompressionZstd
	tw    *tar.Writer
	sums  map[string]string
	mtime time.Time // of manifest.json and checksums.json
	bufs  [][]byte  // content is streamed through these

	upperAdded   bool
	volumesAdded int
	closed       bool
	err          error // sticky: the first error
}

// countingWriter counts the bytes written through it. The zstd encoder
// writes from its own goroutine, hence the atomic.
type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// encoderConcurrency is how many blocks zstd compresses at once: with 2,
// one block is compressed on a second goroutine while the caller fills
// the next. More does not help: hashing a big file (on its own goroutine,
// see copyHashParallel) is as slow as compressing it at SpeedFastest, so
// two cores keep up with both.
const encoderConcurrency = 2

// NewWriter starts an archive on w with compression c and writes m as its
// first entry. m.FormatVersion may be left 0, meaning FormatVersion; m must
// otherwise pass Validate. Close finishes the archive but does not close w.
func NewWriter(w io.Writer, c Compression, m *Manifest) (*Writer, error) {
	man := *m
	if man.FormatVersion == 0 {
		man.FormatVersion = FormatVersion
	}
	if err := man.Validate(); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	data, err := json.MarshalIndent(&man, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("checkpoint: encode manifest: %w", err)
	}
	data = append(data, '\n')

	aw := &Writer{
		out:   &countingWriter{w: w},
		sums:  make(map[string]string),
		mtime: time.Unix(man.CreatedAt.Unix(), 0),
		bufs:  make([][]byte, copyBufs),
	}
	for i := range aw.bufs {
		aw.bufs[i] = make([]byte, copyBufSize)
	}
	if man.CreatedAt.IsZero() {
		aw.mtime = time.Unix(0, 0)
	}
	switch c {
	case CompressionZstd:
		aw.zw, err = zstd.NewWriter(aw.out,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(encoderConcurrency),
			zstd.WithEncoderCRC(true))
		if err != nil {
			return nil, fmt.Errorf("checkpoint: zstd: %w", err)
		}
		aw.tw = tar.NewWriter(aw.zw)
	case CompressionNone:
		aw.bw = bufio.NewWriterSize(aw.out, 256<<10)
		aw.tw = tar.NewWriter(aw.bw)
	default:
		return nil, errdefs.New(errdefs.InvalidArgument, "invalid compression %q (want zstd or none)", string(c))
	}
	hdr := aw.fileHeader(ManifestName, int64(len(data)))
	if err := aw.writeEntry(hdr, strings.NewReader(string(data))); err != nil {
		aw.Close()
		return nil, err
	}
	return aw, nil
}

// fileHeader is the header of an entry podctl generates (manifest.json,
// checksums.json).
func (w *Writer) fileHeader(name string, size int64) *tar.Header {
	return &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0o644,
		Size:     size,
		ModTime:  w.mtime,
		Format:   tar.FormatPAX,
	}
}

// writeEntry writes hdr and then exactly hdr.Size bytes of content (nil for
// entries without content), and records the entry's checksum.
func (w *Writer) writeEntry(hdr *tar.Header, content io.Reader) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("checkpoint: archive already closed")
	}
	if _, dup := w.sums[hdr.Name]; dup {
		w.err = fmt.Errorf("checkpoint: duplicate entry %s", hdr.Name)
		return w.err
	}
	h := EntryHash(hdr)
	if err := w.tw.WriteHeader(hdr); err != nil {
		w.err = fmt.Errorf("checkpoint: write %s: %w", hdr.Name, err)
		return w.err
	}
	var err error
	if hdr.Size > parallelHashMin {
		err = w.copyHashParallel(hdr, content, h)
	} else {
		err = w.copyHash(hdr, content, h)
	}
	if err != nil {
		w.err = err
		return err
	}
	w.sums[hdr.Name] = hex.EncodeToString(h.Sum(nil))
	return nil
}

// parallelHashMin is the content size from which an entry is hashed on
// another goroutine: SHA-256 costs about as much as compressing with
// zstd's fastest level, so the two run side by side on big CRIU images.
const parallelHashMin = 4 << 20

// copyHash copies hdr.Size bytes of content to the archive and to h.
func (w *Writer) copyHash(hdr *tar.Header, content io.Reader, h hash.Hash) error {
	buf := w.bufs[0]
	for left := hdr.Size; left > 0; {
		n, err := readChunk(hdr.Name, content, buf[:min(left, int64(len(buf)))])
		if err != nil {
			return err
		}
		h.Write(buf[:n])
		if _, err := w.tw.Write(buf[:n]); err != nil {
			return fmt.Errorf("checkpoint: write %s: %w", hdr.Name, err)
		}
		left -= int64(n)
	}
	return nil
}

// copyHashParallel is copyHash with the hashing on another goroutine:
// each chunk read is handed to the hasher and written to the archive at
// the same time (both only read it), and its buffer is reused once the
// hasher is done with it.
func (w *Writer) copyHashParallel(hdr *tar.Header, content io.Reader, h hash.Hash) error {
	read := func(buf []byte) (int, error) { return readChunk(hdr.Name, content, buf) }
	write := func(buf []byte) error {
		if _, err := w.tw.Write(buf); err != nil {
			return fmt.Errorf("checkpoint: write %s: %w", hdr.Name, err)
		}
		return nil
	}
	return CopyHashing(w.bufs, hdr.Size, h, read, write)
}

// readChunk fills buf from the content of the entry name.
func readChunk(name string, content io.Reader, buf []byte) (int, error) {
	n, err := io.ReadFull(content, buf)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return n, fmt.Errorf("checkpoint: %s shrank while being archived", name)
	}
	if err != nil {
		return n, fmt.Errorf("checkpoint: read %s: %w", name, err)
	}
	return n, nil
}

// AddCRIUImages adds every regular file in dir (not recursively, in name
// order) as criu/NAME. Other kinds of file are skipped.
func (w *Writer) AddCRIUImages(dir string) error {
	return w.AddCRIUImagesFunc(dir, nil)
}

// AddCRIUImagesFunc is AddCRIUImages for the files whose name keep returns
// true for; a nil keep keeps every file. It must be called before
// AddUpperLayer, and may be called more than once with distinct names.
func (w *Writer) AddCRIUImagesFunc(dir string, keep func(name string) bool) error {
	if w.err != nil {
		return w.err
	}
	if w.upperAdded {
		return errors.New("checkpoint: CRIU images must be added before the upper layer")
	}
	ents, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		w.err = fmt.Errorf("checkpoint: read CRIU images: %w", err)
		return w.err
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || (keep != nil && !keep(name)) {
			continue
		}
		if !utf8.ValidString(name) {
			w.err = errdefs.New(errdefs.Unsupported, "checkpoint: CRIU image name %q is not valid UTF-8", name)
			return w.err
		}
		if err := w.addCRIUImage(filepath.Join(dir, name), CRIUPrefix+name); err != nil {
			return err
		}
	}
	return nil
}

func (w *Writer) addCRIUImage(path, name string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		w.err = fmt.Errorf("checkpoint: %w", err)
		return w.err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		w.err = fmt.Errorf("checkpoint: stat %s: %w", path, err)
		return w.err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil // replaced by something else since ReadDir
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     int64(st.Mode & 0o7777),
		Uid:      int(st.Uid),
		Gid:      int(st.Gid),
		Size:     st.Size,
		ModTime:  time.Unix(st.Mtim.Sec, 0),
		Format:   tar.FormatPAX,
	}
	return w.writeEntry(hdr, f)
}

// devIno identifies an inode, to find hard links.
type devIno struct{ dev, ino uint64 }

// AddUpperLayer adds the overlayfs writable layer rooted at dir: the
// directory itself as "upper" and everything under it as upper/..., in
// lexical walk order (every directory before its contents). It does not
// follow symbolic links. Files that share an inode are written once and
// then as hard links to the first name. It keeps mode (with setuid, setgid
// and sticky bits), owner, modification time (to the second) and the
// trusted.overlay.* and user.* extended attributes. Sockets are skipped,
// and so are the device nodes every pod's /dev holds (virtns.IsPodDevice),
// which the restore makes again; other devices than overlay whiteouts
// (character device 0:0) are refused.
// It can be called once.
func (w *Writer) AddUpperLayer(dir string) error {
	if w.err != nil {
		return w.err
	}
	if w.upperAdded {
		return errors.New("checkpoint: upper layer already added")
	}
	w.upperAdded = true
	return w.addTree(UpperRoot, dir, "upper layer")
}

// AddVolume adds the files of the named volume name, rooted at dir, as
// "volumes/NAME" and "volumes/NAME/...", the way AddUpperLayer adds the
// writable layer. Volumes come after the upper layer, in the order of
// the manifest's Volumes, each once.
func (w *Writer) AddVolume(name, dir string) error {
	if w.err != nil {
		return w.err
	}
	if !w.upperAdded {
		return errors.New("checkpoint: volumes must be added after the upper layer")
	}
	w.volumesAdded++
	return w.addTree(VolumeRoot(name), dir, "volume "+name)
}

// AddVolumes adds each volume of vols (a manifest's Volumes) from the
// directory of dirs at the same index.
func (w *Writer) AddVolumes(vols []Volume, dirs []string) error {
	if len(vols) != len(dirs) {
		return fmt.Errorf("checkpoint: %d volumes and %d directories", len(vols), len(dirs))
	}
	for i, v := range vols {
		if err := w.AddVolume(v.Name, dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

// addTree adds the directory dir and everything under it as root and
// root/... (see AddUpperLayer).
func (w *Writer) addTree(root, dir, what string) error {
	links := make(map[devIno]string)
	xbuf := make([]byte, 4096)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := root
		if path != dir {
			rel, err := filepath.Rel(dir, path)
			if err != nil {
				return err
			}
			name = root + "/" + filepath.ToSlash(rel)
		}
		if path == dir && !d.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return w.addUpperEntry(path, name, links, &xbuf)
	})
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("checkpoint: %s: %w", what, err)
	}
	return w.err
}

func (w *Writer) addUpperEntry(path, name string, links map[devIno]string, xbuf *[]byte) error {
	if !utf8.ValidString(name) {
		w.err = errdefs.New(errdefs.Unsupported, "checkpoint: file name %q is not valid UTF-8", name)
		return w.err
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return err
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, 0),
		Format:  tar.FormatPAX,
	}
	ft := st.Mode & unix.S_IFMT
	if ft == unix.S_IFSOCK {
		return nil
	}
	if ft == unix.S_IFCHR && virtns.IsPodDevice(strings.TrimPrefix(name, UpperRoot), st.Rdev) {
		return nil // the restore makes it again
	}
	if ft != unix.S_IFDIR && st.Nlink > 1 {
		key := devIno{uint64(st.Dev), st.Ino}
		if first, ok := links[key]; ok {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			return w.writeEntry(hdr, nil)
		}
		links[key] = name
	}
	xattrs, err := listXattrs(path, xbuf)
	if err != nil {
		return err
	}
	if len(xattrs) > 0 {
		hdr.PAXRecords = xattrs
	}
	switch ft {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname, err = os.Readlink(path)
		if err != nil {
			return err
		}
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFCHR:
		if st.Rdev != 0 {
			w.err = errdefs.New(errdefs.Unsupported, "checkpoint: %s is character device %d:%d; only overlay whiteouts (0:0) can be archived",
				path, unix.Major(st.Rdev), unix.Minor(st.Rdev))
			return w.err
		}
		hdr.Typeflag = tar.TypeChar
	case unix.S_IFBLK:
		w.err = errdefs.New(errdefs.Unsupported, "checkpoint: %s is a block device, which cannot be archived", path)
		return w.err
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		return w.writeEntry(hdr, f)
	default:
		return fmt.Errorf("%s has unknown file type %#o", path, ft)
	}
	return w.writeEntry(hdr, nil)
}

// listXattrs returns path's extended attributes in the namespaces an
// archive carries, as PAX records, or nil when it has none.
func listXattrs(path string, buf *[]byte) (map[string]string, error) {
	var n int
	var err error
	for {
		n, err = unix.Llistxattr(path, *buf)
		if errors.Is(err, unix.ERANGE) {
			*buf = make([]byte, 2*len(*buf))
			continue
		}
		break
	}
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list xattrs of %s: %w", path, err)
	}
	if n == 0 {
		return nil, nil
	}
	var names []string
	for _, x := range strings.Split(string((*buf)[:n]), "\x00") {
		if AllowedXattr(x) {
			names = append(names, x)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	slices.Sort(names)
	recs := make(map[string]string, len(names))
	for _, x := range names {
		if strings.Contains(x, "=") {
			return nil, fmt.Errorf("xattr %q of %s: names with '=' cannot be archived", x, path)
		}
		v, err := getXattr(path, x)
		if errors.Is(err, unix.ENODATA) {
			continue // removed since listed
		}
		if err != nil {
			return nil, fmt.Errorf("read xattr %s of %s: %w", x, path, err)
		}
		recs[PAXXattrPrefix+x] = v
	}
	return recs, nil
}

func getXattr(path, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Lgetxattr(path, name, nil)
			if err != nil {
				return "", err
			}
			buf = make([]byte, max(sz, 2*len(buf)))
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

// Close writes checksums.json and finishes the tar and zstd streams. It
// does not close the underlying writer. It returns the Writer's first
// error, if any; calling it again returns the same.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	if w.err == nil {
		w.err = w.finish()
	}
	w.closed = true
	if w.zw != nil {
		// Close also stops the encoder's goroutines after an error.
		if err := w.zw.Close(); err != nil && w.err == nil {
			w.err = fmt.Errorf("checkpoint: zstd: %w", err)
		}
	}
	if w.bw != nil && w.err == nil {
		if err := w.bw.Flush(); err != nil {
			w.err = fmt.Errorf("checkpoint: write: %w", err)
		}
	}
	w.bufs = nil
	return w.err
}

func (w *Writer) finish() error {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(Checksums{Algorithm: ChecksumAlgorithm, Entries: w.sums}); err != nil {
		return fmt.Errorf("checkpoint: encode checksums: %w", err)
	}
	data := b.String()
	hdr := w.fileHeader(ChecksumsName, int64(len(data)))
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("checkpoint: write %s: %w", ChecksumsName, err)
	}
	if _, err := io.WriteString(w.tw, data); err != nil {
		return fmt.Errorf("checkpoint: write %s: %w", ChecksumsName, err)
	}
	if err := w.tw.Close(); err != nil {
		return fmt.Errorf("checkpoint: write: %w", err)
	}
	return nil
}

// BytesWritten returns how many bytes (compressed, when compressing) have
// reached the underlying writer so far. After Close it is the archive's
// size.
func (w *Writer) BytesWritten() int64 { return w.out.n.Load() }
