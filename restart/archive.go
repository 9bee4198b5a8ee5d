// Package restart is the restart stage: it checks that this host can
// restore an archive (CheckRestorable), reads podctl checkpoint archives
// (Reader; written by package checkpoint, specified in
// docs/archive-format.md), and restarts the pod from its CRIU images,
// adopting its network only once CRIU is done (Start). Package pod
// decides when and keeps the pod's state. It treats an archive as
// hostile: every entry is checked before anything is created for it,
// nothing is ever written outside the destination directory, and the
// archive is only reported good once every entry's checksum has been
// verified at its end.
package restart

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/size"
)

// Limits bounds what a Reader accepts, so that a hostile or corrupt
// archive cannot exhaust memory or disk. A zero field means its default.
type Limits struct {
	// MaxManifestBytes is the largest manifest.json accepted.
	MaxManifestBytes int64
	// MaxEntries is the most entries an archive may have, manifest.json
	// and checksums.json included.
	MaxEntries int
	// MaxTotalBytes is the most content (the sum of the entries' sizes,
	// before compression) an archive may have.
	MaxTotalBytes int64
	// PlainOnly refuses a compressed archive: a dock's, whose sources
	// send plain tar streams, and for which a zstd decoder's window (up
	// to 128 MiB, the peer's choice) would be memory no budget holds.
	PlainOnly bool
}

// DefaultLimits returns the limits podctl reads archives with: a 1 MiB
// manifest, 1<<20 entries, 64 GiB of content.
func DefaultLimits() Limits {
	return Limits{MaxManifestBytes: 1 << 20, MaxEntries: 1 << 20, MaxTotalBytes: 64 << 30}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	l.MaxManifestBytes = size.OrDefault(l.MaxManifestBytes, d.MaxManifestBytes)
	l.MaxEntries = size.OrDefault(l.MaxEntries, d.MaxEntries)
	l.MaxTotalBytes = size.OrDefault(l.MaxTotalBytes, d.MaxTotalBytes)
	return l
}

// Extracted describes an extracted archive.
type Extracted struct {
	// Manifest is the archive's manifest.
	Manifest *checkpoint.Manifest
	// CRIUDir holds the CRIU images (destDir/criu).
	CRIUDir string
	// UpperDir is the overlayfs writable layer (destDir/upper).
	UpperDir string
	// VolumeDirs are the files of the manifest's Volumes, in its order
	// (destDir/volumes/NAME).
	VolumeDirs []string
	// Entries is the number of criu/, upper and volume entries extracted.
	Entries int
	// Bytes is the number of bytes of file content extracted.
	Bytes int64
}

// maxNameLen bounds entry names and link targets (PATH_MAX), which bounds
// the memory a Reader keeps per entry.
const maxNameLen = 4096

// maxDecoderWindow is the largest zstd window accepted, as zstd(1) does
// by default.
const maxDecoderWindow = 128 << 20

// maxTrailer is the most bytes accepted after checksums.json's content:
// its padding, the end-of-archive marker and zero padding to a tar record
// size.
const maxTrailer = 1 << 20

// Reader reads a checkpoint archive in one pass: Manifest, then Extract.
type Reader struct {
	lim     Limits
	src     io.Reader // the tar stream (decompressed)
	zr      *zstd.Decoder
	cleanup runtime.Cleanup // closes zr if the Reader is dropped unclosed
	tr      *tar.Reader

	manifest     *checkpoint.Manifest
	manifestErr  error
	manifestRead bool
	extracting   bool

	entries int   // tar entries read
	total   int64 // sum of their sizes
	res     Reserver
	order   []string
	seen    map[string]*entry
}

// entry is what a Reader remembers of an entry it has read.
type entry struct {
	typ byte
	sum [32]byte
	// listed and matches say whether checksums.json lists the entry, and
	// with its checksum.
	listed, matches bool
}

// bad returns an InvalidImage error.
func bad(format string, args ...any) error {
	return errdefs.New(errdefs.InvalidImage, "archive: "+format, args...)
}

// streamErr classifies an error reading the tar stream.
func streamErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return bad("truncated (unexpected end of data)")
	}
	var e *errdefs.Error
	if errors.As(err, &e) {
		return err
	}
	return bad("corrupt stream: %v", err)
}

// NewReader starts reading an archive from r, detecting zstd compression
// by its magic number (anything else is read as a plain tar stream). A
// caller that does not call Extract (say it refuses the archive after
// Manifest) should Close the Reader to release the decompressor at once.
func NewReader(r io.Reader, lim Limits) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	rd := &Reader{lim: lim.withDefaults(), src: br, seen: make(map[string]*entry)}
	magic, err := br.Peek(len(checkpoint.ZstdMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, bad("read: %v", err)
	}
	if string(magic) == checkpoint.ZstdMagic && lim.PlainOnly {
		return nil, bad("compressed; only plain tar streams are received here")
	}
	if string(magic) == checkpoint.ZstdMagic {
		rd.zr, err = zstd.NewReader(br, zstd.WithDecoderMaxWindow(maxDecoderWindow))
		if err != nil {
			return nil, bad("zstd: %v", err)
		}
		rd.src = rd.zr
		// The decoder runs goroutines until closed. A caller that stops
		// after Manifest (refusing the archive) and forgets Close would
		// leak them, so close it when the Reader becomes unreachable.
		rd.cleanup = runtime.AddCleanup(rd, func(zr *zstd.Decoder) { zr.Close() }, rd.zr)
	}
	rd.tr = tar.NewReader(rd.src)
	return rd, nil
}

// Reserver reserves disk space from a budget shared with other work, or
// fails if it cannot: internal/budget's Lease, in a dock.
type Reserver interface {
	Reserve(n int64) error
}

// ReserveWith makes Extract reserve from res the space of each entry
// before it writes it: its size rounded up to whole blocks, and a block
// more for its inode, its name and its directory's growth. A refused
// reservation fails Extract with the refusal, wrapped, which keeps its
// errdefs class. Call it before Extract.
func (r *Reader) ReserveWith(res Reserver) { r.res = res }

// blockSize is the allocation unit ReserveWith charges entries by.
const blockSize = 4096

// reserve reserves the space of an entry Extract is about to write.
func (r *Reader) reserve(hdr *tar.Header) error {
	if r.res == nil {
		return nil
	}
	n := blockSize
	if hdr.Typeflag == tar.TypeReg {
		n += int((hdr.Size + blockSize - 1) / blockSize * blockSize)
	}
	if err := r.res.Reserve(int64(n)); err != nil {
		return fmt.Errorf("archive: extract %s: %w", hdr.Name, err)
	}
	return nil
}

// Close releases the decompressor. Extract calls it; it is idempotent.
func (r *Reader) Close() error {
	if r.zr != nil {
		r.cleanup.Stop()
		r.zr.Close()
		r.zr = nil
	}
	return nil
}

// Manifest reads the archive's first entry, manifest.json, and validates
// it, so that a caller can refuse an archive (an unknown version, a name
// conflict) before extracting it. It is idempotent.
func (r *Reader) Manifest() (*checkpoint.Manifest, error) {
	if !r.manifestRead {
		r.manifestRead = true
		r.manifest, r.manifestErr = r.readManifest()
	}
	return r.manifest, r.manifestErr
}

func (r *Reader) readManifest() (*checkpoint.Manifest, error) {
	hdr, err := r.next()
	if errors.Is(err, io.EOF) {
		return nil, bad("empty (no %s)", checkpoint.ManifestName)
	}
	if err != nil {
		return nil, err
	}
	if hdr.Name != checkpoint.ManifestName {
		return nil, bad("%s is not the first entry (found %q)", checkpoint.ManifestName, hdr.Name)
	}
	if err := checkHeader(hdr); err != nil {
		return nil, err
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil, bad("%s is not a regular file", checkpoint.ManifestName)
	}
	if hdr.Size > r.lim.MaxManifestBytes {
		return nil, bad("%s is %d bytes, over the %d-byte limit", checkpoint.ManifestName, hdr.Size, r.lim.MaxManifestBytes)
	}
	data, err := r.readSmall(hdr)
	if err != nil {
		return nil, err
	}
	var m checkpoint.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, bad("%s: %v", checkpoint.ManifestName, err)
	}
	if err := m.Validate(); err != nil {
		return nil, bad("%v", err)
	}
	return &m, nil
}

// next reads the next header, counting it against the limits.
func (r *Reader) next() (*tar.Header, error) {
	hdr, err := r.tr.Next()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	if err != nil {
		return nil, streamErr(err)
	}
	r.entries++
	if r.entries > r.lim.MaxEntries {
		return nil, bad("more than %d entries", r.lim.MaxEntries)
	}
	if hdr.Size > r.lim.MaxTotalBytes-r.total {
		return nil, bad("content exceeds the %d-byte limit", r.lim.MaxTotalBytes)
	}
	r.total += hdr.Size
	return hdr, nil
}

// readSmall reads the content of an entry already checked to be small,
// and records the entry. Its buffer grows as the content arrives: the
// size in the header is a claim until then.
func (r *Reader) readSmall(hdr *tar.Header) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r.tr, hdr.Size))
	if err != nil {
		return nil, streamErr(err)
	}
	if int64(len(data)) != hdr.Size {
		return nil, bad("truncated (unexpected end of data)")
	}
	h := checkpoint.EntryHash(hdr)
	h.Write(data)
	r.record(hdr.Name, hdr.Typeflag, h)
	return data, nil
}

func (r *Reader) record(name string, typ byte, h hash.Hash) {
	e := &entry{typ: typ}
	h.Sum(e.sum[:0])
	r.seen[name] = e
	r.order = append(r.order, name)
}

// checkName returns why name cannot be an entry name, or "".
func checkName(name string) string {
	switch {
	case name == "":
		return "is empty"
	case len(name) > maxNameLen:
		return fmt.Sprintf("is longer than %d bytes", maxNameLen)
	case strings.IndexByte(name, 0) >= 0:
		return "contains a NUL byte"
	case !utf8.ValidString(name):
		return "is not valid UTF-8"
	case strings.HasPrefix(name, "/"):
		return "is an absolute path"
	case name == ".." || strings.HasPrefix(name, "../") || strings.HasSuffix(name, "/..") || strings.Contains(name, "/../"):
		return "escapes the archive"
	case path.Clean(name) != name:
		return "is not a clean path"
	}
	return ""
}

// allowedPAX reports whether a PAX record may appear in an archive: the
// standard ones archive/tar interprets (atime and ctime are ignored) and
// xattrs in the namespaces an archive carries.
func allowedPAX(key string) bool {
	switch key {
	case "path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "atime", "ctime":
		return true
	}
	return strings.HasPrefix(key, checkpoint.PAXXattrPrefix) && checkpoint.AllowedXattr(key[len(checkpoint.PAXXattrPrefix):])
}

// checkHeader checks what every entry must satisfy whatever its name: a
// valid name, known PAX records, and fields consistent with its type.
func checkHeader(hdr *tar.Header) error {
	if why := checkName(hdr.Name); why != "" {
		return bad("entry %q %s", hdr.Name, why)
	}
	for k := range hdr.PAXRecords {
		if !allowedPAX(k) {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return bad("entry %q is a sparse file, which is not supported", hdr.Name)
			}
			return bad("entry %q has unsupported PAX record %q", hdr.Name, k)
		}
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeFifo:
	case tar.TypeBlock:
		return bad("entry %q is a block device", hdr.Name)
	default:
		return bad("entry %q has unsupported type %q", hdr.Name, string(rune(hdr.Typeflag)))
	}
	if hdr.Typeflag != tar.TypeReg && hdr.Size != 0 {
		return bad("entry %q has content but is not a regular file", hdr.Name)
	}
	if hdr.Typeflag == tar.TypeChar {
		if hdr.Devmajor != 0 || hdr.Devminor != 0 {
			return bad("entry %q is character device %d:%d (only 0:0 whiteouts are allowed)", hdr.Name, hdr.Devmajor, hdr.Devminor)
		}
	} else if hdr.Devmajor != 0 || hdr.Devminor != 0 {
		return bad("entry %q has device numbers but is not a device", hdr.Name)
	}
	if hdr.Typeflag != tar.TypeSymlink && hdr.Typeflag != tar.TypeLink && hdr.Linkname != "" {
		return bad("entry %q has a link target but is not a link", hdr.Name)
	}
	if hdr.Mode&^0o7777 != 0 {
		return bad("entry %q has invalid mode %#o", hdr.Name, hdr.Mode)
	}
	if hdr.Uid < 0 || hdr.Uid > 0xfffffffe || hdr.Gid < 0 || hdr.Gid > 0xfffffffe {
		return bad("entry %q has invalid owner %d:%d", hdr.Name, hdr.Uid, hdr.Gid)
	}
	return nil
}

// xattrs returns the extended attributes of a checked header, sorted by
// name.
func xattrs(hdr *tar.Header) [][2]string {
	var xs [][2]string
	for k, v := range hdr.PAXRecords {
		if strings.HasPrefix(k, checkpoint.PAXXattrPrefix) {
			xs = append(xs, [2]string{k[len(checkpoint.PAXXattrPrefix):], v})
		}
	}
	slices.SortFunc(xs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return xs
}

// Extract extracts the rest of the archive (reading the manifest first if
// Manifest has not been called): the CRIU images into destDir/criu and the
// upper layer into destDir/upper. destDir is created if needed; criu and
// upper must not exist in it. It returns only once the whole stream has
// been read and every checksum verified.
//
// Every error about the archive is of kind errdefs.InvalidImage (an error
// creating the files, such as a full disk, is reported the same way, with
// its cause); cancelling ctx, which is checked between entries and while
// copying, returns ctx's error. On error, destDir holds a partial,
// unverified extraction: the caller must remove it (os.RemoveAll).
// Extract can be called once.
func (r *Reader) Extract(ctx context.Context, destDir string) (*Extracted, error) {
	if r.extracting {
		return nil, errors.New("archive: Extract called twice")
	}
	r.extracting = true
	defer r.Close()
	m, err := r.Manifest()
	if err != nil {
		return nil, err
	}
	x, err := newExtractor(ctx, destDir)
	if err != nil {
		return nil, err
	}
	defer x.close()
	res := &Extracted{Manifest: m, CRIUDir: filepath.Join(destDir, "criu"), UpperDir: filepath.Join(destDir, checkpoint.UpperRoot)}
	// tree is the directory tree ("upper", "volumes/NAME") whose entries
	// come now; volumes counts the manifest's volumes begun.
	tree, volumes := "", 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("archive: extract: %w", err)
		}
		hdr, err := r.next()
		if errors.Is(err, io.EOF) {
			return nil, bad("truncated (no %s)", checkpoint.ChecksumsName)
		}
		if err != nil {
			return nil, err
		}
		if err := checkHeader(hdr); err != nil {
			return nil, err
		}
		name := hdr.Name
		if name == checkpoint.ChecksumsName {
			if volumes != len(m.Volumes) {
				return nil, bad("volume %s of the manifest is not in the archive", m.Volumes[volumes].Name)
			}
			if err := r.verify(hdr); err != nil {
				return nil, err
			}
			break
		}
		if _, dup := r.seen[name]; dup {
			return nil, bad("duplicate entry %q", name)
		}
		if err := r.reserve(hdr); err != nil {
			return nil, err
		}
		var h hash.Hash
		switch {
		case strings.HasPrefix(name, checkpoint.CRIUPrefix) && !strings.Contains(name[len(checkpoint.CRIUPrefix):], "/"):
			if tree != "" {
				return nil, bad("entry %q is out of order (criu/ entries come before upper/ entries)", name)
			}
			if hdr.Typeflag != tar.TypeReg {
				return nil, bad("entry %q is not a regular file (CRIU images must be)", name)
			}
			h, err = x.criuFile(hdr, r.tr)
		case name == checkpoint.UpperRoot:
			if tree != "" {
				return nil, bad("entry %q is out of order (it must be the first upper entry)", name)
			}
			if hdr.Typeflag != tar.TypeDir {
				return nil, bad("entry %q is not a directory", name)
			}
			tree = name
			h, err = x.treeRoot(hdr)
		case strings.HasPrefix(name, checkpoint.VolumesPrefix) && !strings.Contains(name[len(checkpoint.VolumesPrefix):], "/"):
			if tree == "" || volumes == len(m.Volumes) || name != checkpoint.VolumeRoot(m.Volumes[volumes].Name) {
				return nil, bad("entry %q is out of order or not a volume of the manifest (volumes come after upper, in the manifest's order)", name)
			}
			if hdr.Typeflag != tar.TypeDir {
				return nil, bad("entry %q is not a directory", name)
			}
			tree, volumes = name, volumes+1
			res.VolumeDirs = append(res.VolumeDirs, filepath.Join(destDir, filepath.FromSlash(name)))
			h, err = x.treeRoot(hdr)
		case tree == "" && strings.HasPrefix(name, checkpoint.UpperPrefix), tree != "" && strings.HasPrefix(name, tree+"/"):
			if tree == "" {
				tree = checkpoint.UpperRoot // its root entry is optional
			}
			if err := r.checkParents(tree, name); err != nil {
				return nil, err
			}
			if hdr.Typeflag == tar.TypeLink {
				if err := r.checkHardLink(tree, hdr); err != nil {
					return nil, err
				}
			}
			if hdr.Typeflag == tar.TypeSymlink && (hdr.Linkname == "" || len(hdr.Linkname) > maxNameLen || strings.IndexByte(hdr.Linkname, 0) >= 0) {
				return nil, bad("symlink %q has an invalid target", name)
			}
			h, err = x.treeEntry(hdr, r.tr)
		default:
			return nil, bad("unexpected entry %q (want %sNAME, %s... or %sNAME/...)", name, checkpoint.CRIUPrefix, checkpoint.UpperPrefix, checkpoint.VolumesPrefix)
		}
		if err != nil {
			return nil, err
		}
		r.record(name, hdr.Typeflag, h)
		res.Entries++
		if hdr.Typeflag == tar.TypeReg {
			res.Bytes += hdr.Size
		}
	}
	if err := x.finishDirs(); err != nil {
		return nil, err
	}
	return res, nil
}

// checkParents checks that every directory above an entry of tree
// ("upper" or "volumes/NAME") was extracted before it as a directory, not
// a symlink or anything else.
func (r *Reader) checkParents(tree, name string) error {
	for i := len(tree) + 1; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		dir := name[:i]
		e, ok := r.seen[dir]
		switch {
		case !ok:
			return bad("entry %q comes before its parent directory %q", name, dir)
		case e.typ == tar.TypeSymlink:
			return bad("entry %q goes through symlink %q", name, dir)
		case e.typ != tar.TypeDir:
			return bad("entry %q is under %q, which is not a directory", name, dir)
		}
	}
	return nil
}

// checkHardLink checks that a hard link points to a non-directory entry
// of its own tree extracted before it.
func (r *Reader) checkHardLink(tree string, hdr *tar.Header) error {
	target := hdr.Linkname
	if why := checkName(target); why != "" {
		return bad("hard link %q: target %q %s", hdr.Name, target, why)
	}
	if !strings.HasPrefix(target, tree+"/") {
		return bad("hard link %q points outside %s/ (%q)", hdr.Name, tree, target)
	}
	e, ok := r.seen[target]
	if !ok {
		return bad("hard link %q points to %q, which has not been extracted before it", hdr.Name, target)
	}
	if e.typ == tar.TypeDir {
		return bad("hard link %q points to directory %q", hdr.Name, target)
	}
	return nil
}

// verify reads checksums.json and the end of the stream, and checks every
// entry's checksum.
func (r *Reader) verify(hdr *tar.Header) error {
	if hdr.Typeflag != tar.TypeReg {
		return bad("%s is not a regular file", checkpoint.ChecksumsName)
	}
	// The checksums of the entries read so far, names JSON-escaped, with
	// generous room for whitespace. This bounds the time reading it
	// takes, not the memory: it is read as it arrives (verifySums).
	limit := int64(1 << 20)
	for _, name := range r.order {
		limit += 6*int64(len(name)) + 96
	}
	if hdr.Size > limit {
		return bad("%s is %d bytes, too large for %d entries", checkpoint.ChecksumsName, hdr.Size, len(r.order))
	}
	return r.verifySums(hdr.Size)
}

// checkTrailer reads what follows the last entry's content of size bytes:
// its padding to a 512-byte block, the end-of-archive marker (two zero
// blocks) and optionally more zeros, up to maxTrailer bytes in all. For a
// zstd archive, reading to the end also verifies the frame checksum and
// that nothing follows the compressed stream.
func (r *Reader) checkTrailer(size int64) error {
	pad := -size & 511
	buf := make([]byte, 32<<10)
	var n int64
	for empty := 0; ; {
		k, err := r.src.Read(buf)
		if k == 0 && err == nil {
			if empty++; empty > 100 {
				return streamErr(io.ErrNoProgress)
			}
			continue
		}
		empty = 0
		for _, c := range buf[:k] {
			if c != 0 {
				return bad("trailing data after %s", checkpoint.ChecksumsName)
			}
		}
		n += int64(k)
		if n > maxTrailer {
			return bad("trailing data after %s", checkpoint.ChecksumsName)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return streamErr(err)
		}
	}
	if n < pad+1024 {
		return bad("truncated (no end-of-archive marker)")
	}
	return nil
}

// extractor creates the extracted files. Every file is created relative to
// a directory descriptor that was itself opened with O_NOFOLLOW from
// destDir/upper or destDir/criu, with O_EXCL or its equivalent (mkdirat,
// mknodat, symlinkat and linkat fail on an existing name), so nothing in
// the archive can redirect a write outside destDir.
type extractor struct {
	ctx    context.Context
	dest   string
	destFd int
	criuFd int
	// roots are the open root directories of the trees begun: "upper"
	// from the start, "volumes/NAME" as each begins (under volumesFd).
	roots     map[string]int
	volumesFd int
	stack     []openDir // descriptors of the directories leading to the last entry
	dirs      []dirMeta // directories whose mode and mtime are applied last
	bufs      *bufSet   // from bufPool
}

// bufSet holds the buffers file contents are copied through.
type bufSet [4][]byte

var bufPool = sync.Pool{New: func() any {
	var s bufSet
	for i := range s {
		s[i] = make([]byte, 512<<10)
	}
	return &s
}}

type openDir struct {
	name string // archive name, e.g. "upper/a/b"
	fd   int
}

type dirMeta struct {
	name  string
	mode  uint32
	mtime int64
}

const (
	dirFlags  = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fileFlags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
)

func newExtractor(ctx context.Context, destDir string) (*extractor, error) {
	x := &extractor{ctx: ctx, dest: destDir, destFd: -1, criuFd: -1, volumesFd: -1, roots: map[string]int{}}
	if err := os.MkdirAll(destDir, 0o700); err != nil {
		return nil, bad("extract: %v", err)
	}
	var err error
	if x.destFd, err = unix.Open(destDir, dirFlags, 0); err != nil {
		return nil, bad("extract: open %s: %v", destDir, err)
	}
	if x.criuFd, err = x.mkdir(x.destFd, "criu", 0o700); err != nil {
		x.close()
		return nil, err
	}
	upperFd, err := x.mkdir(x.destFd, checkpoint.UpperRoot, 0o755)
	if err != nil {
		x.close()
		return nil, err
	}
	x.roots[checkpoint.UpperRoot] = upperFd
	return x, nil
}

// mkdir creates a directory under destDir and opens it.
func (x *extractor) mkdir(parent int, name string, mode uint32) (int, error) {
	if err := unix.Mkdirat(parent, name, 0o700); err != nil {
		return -1, bad("extract: create %s: %v", filepath.Join(x.dest, name), err)
	}
	fd, err := unix.Openat(parent, name, dirFlags, 0)
	if err != nil {
		return -1, bad("extract: open %s: %v", filepath.Join(x.dest, name), err)
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		unix.Close(fd)
		return -1, bad("extract: chmod %s: %v", filepath.Join(x.dest, name), err)
	}
	return fd, nil
}

func (x *extractor) close() {
	if x.bufs != nil {
		bufPool.Put(x.bufs)
		x.bufs = nil
	}
	for _, d := range x.stack {
		unix.Close(d.fd)
	}
	x.stack = nil
	for _, fd := range []int{x.destFd, x.criuFd, x.volumesFd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	for _, fd := range x.roots {
		unix.Close(fd)
	}
	x.destFd, x.criuFd, x.volumesFd, x.roots = -1, -1, -1, nil
}

// treeOf is the tree an entry name belongs to: "upper" or
// "volumes/NAME".
func treeOf(name string) string {
	if rest, ok := strings.CutPrefix(name, checkpoint.VolumesPrefix); ok {
		vol, _, _ := strings.Cut(rest, "/")
		return checkpoint.VolumeRoot(vol)
	}
	return checkpoint.UpperRoot
}

// dirFd returns a descriptor of the extracted directory dir (a tree's
// root or a directory under it), opening it one component at a time with
// O_NOFOLLOW from the nearest directory already open. The descriptor
// stays owned by the extractor.
func (x *extractor) dirFd(dir string) (int, error) {
	for len(x.stack) > 0 {
		top := x.stack[len(x.stack)-1].name
		if top == dir || strings.HasPrefix(dir, top+"/") {
			break
		}
		unix.Close(x.stack[len(x.stack)-1].fd)
		x.stack = x.stack[:len(x.stack)-1]
	}
	base := treeOf(dir)
	fd, ok := x.roots[base]
	if !ok {
		return -1, bad("extract %s: its tree %s was not begun", dir, base)
	}
	if len(x.stack) > 0 {
		base, fd = x.stack[len(x.stack)-1].name, x.stack[len(x.stack)-1].fd
	}
	for len(base) < len(dir) {
		end := strings.IndexByte(dir[len(base)+1:], '/')
		if end < 0 {
			end = len(dir)
		} else {
			end += len(base) + 1
		}
		comp := dir[len(base)+1 : end]
		nfd, err := unix.Openat(fd, comp, dirFlags, 0)
		if err != nil {
			return -1, bad("extract %s: open %s: %v", dir, dir[:end], err)
		}
		base, fd = dir[:end], nfd
		x.stack = append(x.stack, openDir{name: base, fd: fd})
	}
	return fd, nil
}

// parallelHashMin is the content size from which an entry is hashed on
// another goroutine, in parallel with the decompression and the writing.
const parallelHashMin = 4 << 20

// copyContent copies size bytes of content from r to f and into h.
func (x *extractor) copyContent(name string, f *os.File, r io.Reader, size int64, h hash.Hash) error {
	if x.bufs == nil {
		x.bufs = bufPool.Get().(*bufSet)
	}
	if size > parallelHashMin {
		return x.copyParallel(name, f, r, size, h)
	}
	buf := x.bufs[0]
	for left := size; left > 0; {
		n, err := x.readChunk(r, buf[:min(left, int64(len(buf)))])
		if err != nil {
			return err
		}
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			return bad("extract %s: %v", name, err)
		}
		left -= int64(n)
	}
	return nil
}

// copyParallel is copyContent with the hashing on another goroutine: each
// chunk read is handed to the hasher and written to f at the same time
// (both only read it), and its buffer is reused once the hasher is done.
func (x *extractor) copyParallel(name string, f *os.File, r io.Reader, size int64, h hash.Hash) error {
	read := func(buf []byte) (int, error) { return x.readChunk(r, buf) }
	write := func(buf []byte) error {
		if _, err := f.Write(buf); err != nil {
			return bad("extract %s: %v", name, err)
		}
		return nil
	}
	return checkpoint.CopyHashing(x.bufs[:], size, h, read, write)
}

// readChunk fills buf from the entry's content, unless ctx is done.
func (x *extractor) readChunk(r io.Reader, buf []byte) (int, error) {
	if err := x.ctx.Err(); err != nil {
		return 0, fmt.Errorf("archive: extract: %w", err)
	}
	n, err := io.ReadFull(r, buf)
	if err != nil {
		return n, streamErr(err)
	}
	return n, nil
}

// criuFile extracts a CRIU image. Its owner and xattrs are not applied:
// the images belong to whoever restores them.
func (x *extractor) criuFile(hdr *tar.Header, r io.Reader) (hash.Hash, error) {
	base := hdr.Name[len(checkpoint.CRIUPrefix):]
	h := checkpoint.EntryHash(hdr)
	if err := x.regular(x.criuFd, base, hdr, r, h, false); err != nil {
		return nil, err
	}
	return h, nil
}

// regular creates a regular file base in the directory parent from hdr and
// r. With full, it also applies the owner, the setuid/setgid/sticky bits
// and the xattrs.
func (x *extractor) regular(parent int, base string, hdr *tar.Header, r io.Reader, h hash.Hash, full bool) error {
	fd, err := unix.Openat(parent, base, fileFlags, 0o600)
	if err != nil {
		return bad("extract %s: %v", hdr.Name, err)
	}
	f := os.NewFile(uintptr(fd), hdr.Name)
	err = x.copyContent(hdr.Name, f, r, hdr.Size, h)
	mode := uint32(hdr.Mode & 0o777)
	if err == nil && full {
		mode = uint32(hdr.Mode & 0o7777)
		if cerr := unix.Fchown(fd, hdr.Uid, hdr.Gid); cerr != nil {
			err = bad("extract %s: chown: %v", hdr.Name, cerr)
		}
		for _, xa := range xattrs(hdr) {
			if err == nil {
				if xerr := unix.Fsetxattr(fd, xa[0], []byte(xa[1]), 0); xerr != nil {
					err = bad("extract %s: set xattr %s: %v", hdr.Name, xa[0], xerr)
				}
			}
		}
	}
	if err == nil {
		// After chown, which clears the setuid and setgid bits.
		if cerr := unix.Fchmod(fd, mode); cerr != nil {
			err = bad("extract %s: chmod: %v", hdr.Name, cerr)
		}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = bad("extract %s: %v", hdr.Name, cerr)
	}
	if err != nil {
		return err
	}
	return setMtime(parent, base, hdr)
}

func setMtime(parent int, base string, hdr *tar.Header) error {
	ts := unix.Timespec{Sec: hdr.ModTime.Unix()}
	if err := unix.UtimesNanoAt(parent, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return bad("extract %s: set mtime: %v", hdr.Name, err)
	}
	return nil
}

// upperRoot applies the "upper" entry to destDir/upper.
func (x *extractor) treeRoot(hdr *tar.Header) (hash.Hash, error) {
	fd, ok := x.roots[hdr.Name]
	if !ok {
		// A volume: destDir/volumes/NAME.
		if x.volumesFd < 0 {
			var err error
			if x.volumesFd, err = x.mkdir(x.destFd, strings.TrimSuffix(checkpoint.VolumesPrefix, "/"), 0o700); err != nil {
				return nil, err
			}
		}
		var err error
		if fd, err = x.mkdir(x.volumesFd, hdr.Name[len(checkpoint.VolumesPrefix):], 0o700); err != nil {
			return nil, err
		}
		x.roots[hdr.Name] = fd
	}
	if err := x.dirAttrs(fd, hdr); err != nil {
		return nil, err
	}
	return checkpoint.EntryHash(hdr), nil
}

// dirAttrs applies a directory's owner and xattrs now and schedules its
// mode and mtime for the end, once nothing more is created in it.
func (x *extractor) dirAttrs(fd int, hdr *tar.Header) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return bad("extract %s: chown: %v", hdr.Name, err)
	}
	for _, xa := range xattrs(hdr) {
		if err := unix.Fsetxattr(fd, xa[0], []byte(xa[1]), 0); err != nil {
			return bad("extract %s: set xattr %s: %v", hdr.Name, xa[0], err)
		}
	}
	x.dirs = append(x.dirs, dirMeta{name: hdr.Name, mode: uint32(hdr.Mode), mtime: hdr.ModTime.Unix()})
	return nil
}

// treeEntry extracts an entry of the upper layer or a volume whose name, parents and
// link target have been checked.
func (x *extractor) treeEntry(hdr *tar.Header, r io.Reader) (hash.Hash, error) {
	dir, base := path.Split(hdr.Name)
	parent, err := x.dirFd(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return nil, err
	}
	h := checkpoint.EntryHash(hdr)
	switch hdr.Typeflag {
	case tar.TypeReg:
		return h, x.regular(parent, base, hdr, r, h, true)
	case tar.TypeDir:
		if err := unix.Mkdirat(parent, base, 0o700); err != nil {
			return nil, bad("extract %s: %v", hdr.Name, err)
		}
		fd, err := unix.Openat(parent, base, dirFlags, 0)
		if err != nil {
			return nil, bad("extract %s: %v", hdr.Name, err)
		}
		// Children usually follow: keep it open for them.
		x.stack = append(x.stack, openDir{name: hdr.Name, fd: fd})
		return h, x.dirAttrs(fd, hdr)
	case tar.TypeLink:
		tdir, tbase := path.Split(hdr.Linkname)
		tfd, closeT, err := x.openPath(strings.TrimSuffix(tdir, "/"))
		if err != nil {
			return nil, err
		}
		err = unix.Linkat(tfd, tbase, parent, base, 0)
		closeT()
		if err != nil {
			return nil, bad("extract %s: link to %s: %v", hdr.Name, hdr.Linkname, err)
		}
		// A hard link shares its target's inode, whose attributes the
		// target's entry set.
		return h, nil
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, parent, base); err != nil {
			return nil, bad("extract %s: %v", hdr.Name, err)
		}
	case tar.TypeFifo:
		if err := unix.Mknodat(parent, base, unix.S_IFIFO|0o600, 0); err != nil {
			return nil, bad("extract %s: %v", hdr.Name, err)
		}
	case tar.TypeChar: // checked to be 0:0, a whiteout
		if err := unix.Mknodat(parent, base, unix.S_IFCHR|0o600, 0); err != nil {
			return nil, bad("extract %s: %v", hdr.Name, err)
		}
	default:
		return nil, bad("entry %q has unsupported type %q", hdr.Name, string(rune(hdr.Typeflag)))
	}
	// A symlink, FIFO or whiteout just created by this extractor.
	if err := unix.Fchownat(parent, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, bad("extract %s: chown: %v", hdr.Name, err)
	}
	if hdr.Typeflag != tar.TypeSymlink {
		err := unix.Fchmodat(parent, base, uint32(hdr.Mode), unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.EOPNOTSUPP) {
			// No fchmodat2: base is the FIFO or device made above, not
			// a symlink, so following is moot.
			err = unix.Fchmodat(parent, base, uint32(hdr.Mode), 0)
		}
		if err != nil {
			return nil, bad("extract %s: chmod: %v", hdr.Name, err)
		}
	}
	if xs := xattrs(hdr); len(xs) > 0 {
		// No fsetxattr on a symlink, FIFO or device: go through the
		// parent's descriptor and do not follow base.
		p := "/proc/self/fd/" + strconv.Itoa(parent) + "/" + base
		for _, xa := range xs {
			if err := unix.Lsetxattr(p, xa[0], []byte(xa[1]), 0); err != nil {
				return nil, bad("extract %s: set xattr %s: %v", hdr.Name, xa[0], err)
			}
		}
	}
	return h, setMtime(parent, base, hdr)
}

// openPath opens the extracted directory dir (a tree's root or a
// directory under it) without disturbing the directory stack; the
// returned function releases the descriptor.
func (x *extractor) openPath(dir string) (int, func(), error) {
	root := treeOf(dir)
	fd, ok := x.roots[root]
	if !ok {
		return -1, nil, bad("extract: open %s: its tree was not begun", dir)
	}
	if dir == root {
		return fd, func() {}, nil
	}
	var opened []int
	release := func() {
		for _, o := range opened {
			unix.Close(o)
		}
	}
	for _, comp := range strings.Split(dir[len(root)+1:], "/") {
		nfd, err := unix.Openat(fd, comp, dirFlags, 0)
		if err != nil {
			release()
			return -1, nil, bad("extract: open %s: %v", dir, err)
		}
		opened = append(opened, nfd)
		fd = nfd
	}
	return fd, release, nil
}

// finishDirs applies the directories' modes and mtimes, deepest first (in
// reverse order of creation), now that nothing more is created in them.
func (x *extractor) finishDirs() error {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		var parent int
		var base string
		if d.name == checkpoint.UpperRoot {
			parent, base = x.destFd, checkpoint.UpperRoot
		} else if treeOf(d.name) == d.name {
			parent, base = x.volumesFd, d.name[len(checkpoint.VolumesPrefix):]
		} else {
			dir, b := path.Split(d.name)
			fd, err := x.dirFd(strings.TrimSuffix(dir, "/"))
			if err != nil {
				return err
			}
			parent, base = fd, b
		}
		fd, err := unix.Openat(parent, base, dirFlags, 0)
		if err != nil {
			return bad("extract %s: %v", d.name, err)
		}
		err = unix.Fchmod(fd, d.mode)
		unix.Close(fd)
		if err != nil {
			return bad("extract %s: chmod: %v", d.name, err)
		}
		ts := unix.Timespec{Sec: d.mtime}
		if err := unix.UtimesNanoAt(parent, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return bad("extract %s: set mtime: %v", d.name, err)
		}
	}
	return nil
}
