package checkpoint

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/internal/errdefs"
)

func testManifest() *Manifest {
	return &Manifest{
		FormatVersion: FormatVersion,
		PodctlVersion: "test",
		CreatedAt:     time.Date(2025, 1, 2, 3, 4, 5, 600, time.UTC),
		Source:        Source{ISA: "amd64", Kernel: "6.1.0", CRIUVersion: "4.0", Hostname: "h"},
		Pod:           json.RawMessage(`{"name":"web"}`),
		Network:       Network{IP: "10.88.0.5", MAC: "02:00:0a:58:00:05", Ports: []PublishedPort{{HostPort: 8080, PodPort: 80, Protocol: "tcp"}}},
		Images:        Images{Kind: ImagesCRIU, PagesIncluded: true},
	}
}

func TestParseCompression(t *testing.T) {
	for _, s := range []string{"zstd", "none"} {
		c, err := ParseCompression(s)
		if err != nil || string(c) != s {
			t.Errorf("ParseCompression(%q) = %q, %v", s, c, err)
		}
	}
	for _, s := range []string{"", "gzip", "ZSTD", "zstd "} {
		_, err := ParseCompression(s)
		if errdefs.KindOf(err) != errdefs.InvalidArgument {
			t.Errorf("ParseCompression(%q): %v, want an InvalidArgument error", s, err)
		}
	}
}

func TestManifestValidate(t *testing.T) {
	if err := testManifest().Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		edit func(*Manifest)
		want string
	}{
		{func(m *Manifest) { m.FormatVersion = 2 }, "unsupported format version 2 (this podctl reads version 1)"},
		{func(m *Manifest) { m.Source.ISA = "" }, "manifest: source.isa is empty"},
		{func(m *Manifest) { m.Images.Kind = "" }, `manifest: unknown images.kind "" (want "criu")`},
		{func(m *Manifest) { m.Images.Lazy = true }, "manifest: exactly one of images.lazy, images.pagesIncluded and images.pagesStreamed must be set (2 are)"},
		{func(m *Manifest) { m.Images.PagesStreamed = true }, "manifest: exactly one of images.lazy, images.pagesIncluded and images.pagesStreamed must be set (2 are)"},
		{func(m *Manifest) { m.Images.PagesIncluded = false }, "manifest: exactly one of images.lazy, images.pagesIncluded and images.pagesStreamed must be set (0 are)"},
		{func(m *Manifest) { m.Pod = json.RawMessage("{") }, "manifest: pod is not valid JSON"},
		{func(m *Manifest) { m.Network.IP = "<nil>" }, `manifest: network.ip "<nil>" is not an IP address`},
		{func(m *Manifest) { m.Network.MAC = "zz" }, `manifest: network.mac "zz" is not a MAC address`},
		{func(m *Manifest) { m.Network.Ports[0].HostPort = 0 }, "manifest: published port 0:80 is out of range"},
		{func(m *Manifest) { m.Network.Ports[0].Protocol = "sctp" }, `manifest: published port 8080:80 has protocol "sctp" (want tcp or udp)`},
	}
	for _, tc := range cases {
		m := testManifest()
		tc.edit(m)
		err := m.Validate()
		if err == nil || err.Error() != tc.want || errdefs.KindOf(err) != errdefs.InvalidArgument {
			t.Errorf("Validate = %v, want %s", err, tc.want)
		}
	}
	m := testManifest()
	m.Network = Network{}
	m.Images = Images{Kind: ImagesCRIU, Lazy: true}
	if err := m.Validate(); err != nil {
		t.Errorf("lazy manifest without network: %v", err)
	}
}

func TestNewWriterRefuses(t *testing.T) {
	m := testManifest()
	m.Source.ISA = ""
	if _, err := NewWriter(io.Discard, CompressionNone, m); errdefs.KindOf(err) != errdefs.InvalidArgument {
		t.Errorf("invalid manifest: %v", err)
	}
	if _, err := NewWriter(io.Discard, "gzip", testManifest()); errdefs.KindOf(err) != errdefs.InvalidArgument {
		t.Errorf("invalid compression: %v", err)
	}
}

// docHash is the entry checksum as docs/archive-format.md specifies it,
// written from the document rather than from EntryHash.
func docHash(hdr *tar.Header, content []byte) string {
	var b bytes.Buffer
	i64 := func(v int64) { binary.Write(&b, binary.LittleEndian, v) }
	str := func(s string) { i64(int64(len(s))); b.WriteString(s) }
	str(hdr.Name)
	b.WriteByte(hdr.Typeflag)
	i64(hdr.Mode)
	i64(int64(hdr.Uid))
	i64(int64(hdr.Gid))
	i64(hdr.Size)
	str(hdr.Linkname)
	i64(hdr.Devmajor)
	i64(hdr.Devminor)
	i64(hdr.ModTime.Unix())
	var names []string
	for k := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	i64(int64(len(names)))
	for _, n := range names {
		str(n)
		str(hdr.PAXRecords["SCHILY.xattr."+n])
	}
	b.Write(content)
	s := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(s[:])
}

// TestEntryHashExample checks the worked example of docs/archive-format.md.
func TestEntryHashExample(t *testing.T) {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: "upper/etc/motd", Mode: 0o644, Size: 3, ModTime: time.Unix(1700000000, 0),
		PAXRecords: map[string]string{"SCHILY.xattr.user.b": "2", "SCHILY.xattr.trusted.overlay.opaque": "y", "mtime": "1700000000.5"}}
	h := EntryHash(hdr)
	h.Write([]byte("hi\n"))
	const want = "87ed8687e538c1eb30d557882720daf6df09164fba02beabca82b03c5a8a93b6"
	if got := hex.EncodeToString(h.Sum(nil)); got != want || docHash(hdr, []byte("hi\n")) != want {
		t.Errorf("checksum %s, want %s", got, want)
	}
}

type readEntry struct {
	hdr     *tar.Header
	content []byte
}

func readTar(t *testing.T, data []byte) []readEntry {
	t.Helper()
	var out []readEntry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, readEntry{hdr, content})
	}
}

// layoutTree makes a CRIU images dir and an upper layer.
func layoutTree(t *testing.T) (criuDir, upperDir string) {
	t.Helper()
	base := t.TempDir()
	criuDir, upperDir = filepath.Join(base, "images"), filepath.Join(base, "upper")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(criuDir, 0o700))
	for _, n := range []string{"pages-1.img", "core-1.img", "inventory.img", "pages-2.img"} {
		must(os.WriteFile(filepath.Join(criuDir, n), []byte("image "+n), 0o600))
	}
	must(os.Mkdir(filepath.Join(criuDir, "sub"), 0o700))
	must(os.Symlink("core-1.img", filepath.Join(criuDir, "link.img")))

	must(os.Mkdir(upperDir, 0o755))
	u := func(p string) string { return filepath.Join(upperDir, p) }
	must(os.WriteFile(u("b"), []byte("bee"), 0o644))
	must(os.Mkdir(u("a"), 0o755))
	must(os.WriteFile(u("a/z"), []byte("zed"), 0o600))
	must(os.Link(u("b"), u("a/y"))) // a/y comes first in walk order
	must(os.Symlink("/nowhere", u("c")))
	must(unix.Mknod(u("sock"), unix.S_IFSOCK|0o600, 0))
	must(unix.Mkfifo(u("fifo"), 0o600))
	must(unix.Setxattr(u("b"), "user.one", []byte("1"), 0))
	must(unix.Setxattr(u("b"), "user.empty", nil, 0))
	if err := unix.Setxattr(u("a"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Logf("no trusted xattrs: %v", err)
	} else {
		must(unix.Setxattr(u("a"), "trusted.notoverlay", []byte("n"), 0))
	}
	ts := unix.Timespec{Sec: 1500000000, Nsec: 999999999}
	must(unix.UtimesNanoAt(unix.AT_FDCWD, u("a/z"), []unix.Timespec{ts, ts}, 0))
	return criuDir, upperDir
}

func TestArchiveLayout(t *testing.T) {
	criuDir, upperDir := layoutTree(t)
	var plain, compressed bytes.Buffer
	for _, out := range []struct {
		buf *bytes.Buffer
		c   Compression
	}{{&plain, CompressionNone}, {&compressed, CompressionZstd}} {
		m := testManifest()
		m.FormatVersion = 0 // means FormatVersion
		w, err := NewWriter(out.buf, out.c, m)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AddCRIUImagesFunc(criuDir, func(name string) bool { return !strings.HasPrefix(name, "pages-") }); err != nil {
			t.Fatal(err)
		}
		if err := w.AddCRIUImages(criuDir); err == nil || !strings.Contains(err.Error(), "duplicate entry criu/core-1.img") {
			t.Fatalf("second AddCRIUImages: %v", err)
		}
		if err := w.Close(); err == nil {
			t.Fatal("Close after an error succeeded")
		}
		out.buf.Reset()
		w, err = NewWriter(out.buf, out.c, m)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AddCRIUImagesFunc(criuDir, func(name string) bool { return !strings.HasPrefix(name, "pages-") }); err != nil {
			t.Fatal(err)
		}
		if err := w.AddCRIUImagesFunc(criuDir, func(name string) bool { return strings.HasPrefix(name, "pages-") }); err != nil {
			t.Fatal(err)
		}
		if err := w.AddUpperLayer(upperDir); err != nil {
			t.Fatal(err)
		}
		if err := w.AddUpperLayer(upperDir); err == nil {
			t.Fatal("second AddUpperLayer succeeded")
		}
		if err := w.AddCRIUImages(criuDir); err == nil {
			t.Fatal("AddCRIUImages after AddUpperLayer succeeded")
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal("second Close:", err)
		}
		if w.BytesWritten() != int64(out.buf.Len()) {
			t.Errorf("%s: BytesWritten %d, wrote %d", out.c, w.BytesWritten(), out.buf.Len())
		}
	}
	if !bytes.HasPrefix(compressed.Bytes(), []byte(ZstdMagic)) {
		t.Fatal("zstd archive lacks the zstd magic")
	}
	zr, err := zstd.NewReader(bytes.NewReader(compressed.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	decompressed, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(decompressed, plain.Bytes()) {
		t.Error("the zstd archive does not decompress to the plain one")
	}

	ents := readTar(t, plain.Bytes())
	var names []string
	for _, e := range ents {
		names = append(names, e.hdr.Name)
		if e.hdr.Format != tar.FormatPAX && e.hdr.Format != tar.FormatUSTAR {
			t.Errorf("%s: format %v", e.hdr.Name, e.hdr.Format)
		}
	}
	want := []string{"manifest.json",
		"criu/core-1.img", "criu/inventory.img", "criu/pages-1.img", "criu/pages-2.img",
		"upper", "upper/a", "upper/a/y", "upper/a/z", "upper/b", "upper/c", "upper/fifo",
		"checksums.json"}
	if !slices.Equal(names, want) {
		t.Fatalf("entries:\n got %q\nwant %q", names, want)
	}
	byName := map[string]readEntry{}
	for _, e := range ents {
		byName[e.hdr.Name] = e
	}
	var m Manifest
	if err := json.Unmarshal(byName["manifest.json"].content, &m); err != nil {
		t.Fatal(err)
	}
	if m.FormatVersion != FormatVersion || !m.CreatedAt.Equal(testManifest().CreatedAt) {
		t.Errorf("manifest = %+v", m)
	}
	if mt := byName["manifest.json"].hdr.ModTime; mt.Unix() != testManifest().CreatedAt.Unix() {
		t.Errorf("manifest mtime = %v", mt)
	}
	if h := byName["upper/a/y"].hdr; h.Typeflag != tar.TypeReg || string(byName["upper/a/y"].content) != "bee" {
		t.Errorf("upper/a/y = %+v", h)
	}
	if h := byName["upper/b"].hdr; h.Typeflag != tar.TypeLink || h.Linkname != "upper/a/y" || h.Size != 0 {
		t.Errorf("upper/b = %+v", h)
	}
	if h := byName["upper/b"].hdr; len(h.PAXRecords) != 0 {
		t.Errorf("hard link carries PAX records %v", h.PAXRecords)
	}
	if recs := byName["upper/a/y"].hdr.PAXRecords; recs["SCHILY.xattr.user.one"] != "1" {
		t.Errorf("upper/a/y xattrs = %q", recs)
	} else if v, ok := recs["SCHILY.xattr.user.empty"]; !ok || v != "" {
		t.Errorf("empty xattr missing: %q", recs)
	}
	if recs := byName["upper/a"].hdr.PAXRecords; recs != nil && (recs["SCHILY.xattr.trusted.overlay.opaque"] != "y" || len(recs) != 1) {
		t.Errorf("upper/a PAX records = %q", recs)
	}
	if h := byName["upper/a/z"].hdr; h.ModTime.Unix() != 1500000000 || h.ModTime.Nanosecond() != 0 || h.Mode != 0o600 {
		t.Errorf("upper/a/z = %+v", h)
	}
	if h := byName["upper/c"].hdr; h.Typeflag != tar.TypeSymlink || h.Linkname != "/nowhere" {
		t.Errorf("upper/c = %+v", h)
	}
	if h := byName["upper/fifo"].hdr; h.Typeflag != tar.TypeFifo {
		t.Errorf("upper/fifo = %+v", h)
	}

	var sums Checksums
	if err := json.Unmarshal(byName["checksums.json"].content, &sums); err != nil {
		t.Fatal(err)
	}
	if sums.Algorithm != "sha256" || len(sums.Entries) != len(ents)-1 {
		t.Fatalf("checksums = %+v", sums)
	}
	for _, e := range ents[:len(ents)-1] {
		if got, want := sums.Entries[e.hdr.Name], docHash(e.hdr, e.content); got != want {
			t.Errorf("%s: checksum %s, the documented encoding gives %s", e.hdr.Name, got, want)
		}
	}
}

func TestUpperDevices(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mknod of devices needs root")
	}
	for _, tc := range []struct {
		mode uint32
		dev  int
		want string
	}{
		{unix.S_IFCHR, 0, ""},
		{unix.S_IFCHR, int(unix.Mkdev(1, 3)), "is character device 1:3; only overlay whiteouts (0:0) can be archived"},
		{unix.S_IFBLK, int(unix.Mkdev(7, 0)), "is a block device, which cannot be archived"},
	} {
		dir := t.TempDir()
		if err := unix.Mknod(filepath.Join(dir, "dev"), tc.mode|0o600, tc.dev); err != nil {
			t.Fatal(err)
		}
		w, err := NewWriter(io.Discard, CompressionZstd, testManifest())
		if err != nil {
			t.Fatal(err)
		}
		err = w.AddUpperLayer(dir)
		cerr := w.Close()
		if tc.want == "" {
			if err != nil || cerr != nil {
				t.Errorf("whiteout: %v, %v", err, cerr)
			}
			continue
		}
		if err == nil || !strings.HasSuffix(err.Error(), tc.want) || errdefs.KindOf(err) != errdefs.Unsupported {
			t.Errorf("err = %v, want ...%s", err, tc.want)
		}
		if !errors.Is(cerr, err) {
			t.Errorf("Close = %v, want the first error", cerr)
		}
	}
}

func TestUpperLayerNotDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, nil, 0o600)
	w, _ := NewWriter(io.Discard, CompressionNone, testManifest())
	defer w.Close()
	if err := w.AddUpperLayer(f); err == nil || !strings.Contains(err.Error(), "is not a directory") {
		t.Errorf("err = %v", err)
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after < len(p) {
		return 0, errors.New("disk full")
	}
	f.after -= len(p)
	return len(p), nil
}

func TestWriteError(t *testing.T) {
	criuDir, upperDir := layoutTree(t)
	for _, c := range []Compression{CompressionNone, CompressionZstd} {
		w, err := NewWriter(&failWriter{after: 100}, c, testManifest())
		if err != nil {
			continue // the error may surface this early
		}
		w.AddCRIUImages(criuDir)
		w.AddUpperLayer(upperDir)
		if err := w.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("%s: Close = %v", c, err)
		}
	}
}

// benchFile writes a 256 MiB file whose 64 KiB chunks are half random, half
// text: compressible about 2:1, like memory pages.
func benchFile(b *testing.B, dir string) int64 {
	const size, chunk = 256 << 20, 64 << 10
	f, err := os.Create(filepath.Join(dir, "pages-1.img"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{1})
	text := bytes.Repeat([]byte("podctl checkpoint page data 0123456789 "), chunk/2/39+1)[:chunk/2]
	buf := make([]byte, chunk)
	for off := 0; off < size; off += chunk {
		rng.Read(buf[:chunk/2])
		copy(buf[chunk/2:], text)
		binary.LittleEndian.PutUint64(buf[chunk/2:], uint64(off)) // not all identical
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	return size
}

type countDiscard struct{ n int64 }

func (c *countDiscard) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func BenchmarkWriteArchive(b *testing.B) {
	dir := b.TempDir()
	size := benchFile(b, dir)
	upper := b.TempDir()
	for _, c := range []Compression{CompressionZstd, CompressionNone} {
		b.Run(string(c), func(b *testing.B) {
			b.SetBytes(size)
			var out countDiscard
			for b.Loop() {
				out.n = 0
				w, err := NewWriter(&out, c, testManifest())
				if err != nil {
					b.Fatal(err)
				}
				if err := w.AddCRIUImages(dir); err != nil {
					b.Fatal(err)
				}
				if err := w.AddUpperLayer(upper); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(out.n)/float64(size), "ratio")
		})
	}
}

// TestBigEntry covers the parallel hashing of big files, and files that
// shrink while being archived.
func TestBigEntry(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 9<<20+12345)
	rand.NewChaCha8([32]byte{7}).Read(data)
	if err := os.WriteFile(filepath.Join(dir, "pages-1.img"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, CompressionZstd, testManifest())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddCRIUImages(dir); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	zr, err := zstd.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	ents := readTar(t, plain)
	var sums Checksums
	if err := json.Unmarshal(ents[len(ents)-1].content, &sums); err != nil {
		t.Fatal(err)
	}
	e := ents[1]
	if e.hdr.Name != "criu/pages-1.img" || !bytes.Equal(e.content, data) {
		t.Fatalf("entry %s, %d bytes", e.hdr.Name, len(e.content))
	}
	if got, want := sums.Entries[e.hdr.Name], docHash(e.hdr, e.content); got != want {
		t.Errorf("checksum %s, want %s", got, want)
	}

	for _, size := range []int64{1000, 9 << 20} {
		w, err := NewWriter(io.Discard, CompressionNone, testManifest())
		if err != nil {
			t.Fatal(err)
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: "criu/x", Size: size, Format: tar.FormatPAX}
		err = w.writeEntry(hdr, io.LimitReader(bytes.NewReader(data), size/2))
		if err == nil || err.Error() != "checkpoint: criu/x shrank while being archived" {
			t.Errorf("size %d: err = %v", size, err)
		}
		if cerr := w.Close(); cerr != err {
			t.Errorf("Close = %v", cerr)
		}
	}
}

// The device nodes of a pod's /dev are left out (the restore makes them
// again); any other device there is refused like anywhere else.
func TestUpperPodDevices(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (make test runs as root): mknod of devices")
	}
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(dir, "dev"), 0o755))
	must(unix.Mknod(filepath.Join(dir, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(dir, "dev/tty"), unix.S_IFCHR|0o666, int(unix.Mkdev(5, 0))))
	must(os.WriteFile(filepath.Join(dir, "dev/kept"), []byte("x"), 0o644))
	var buf bytes.Buffer
	w, err := NewWriter(&buf, CompressionNone, testManifest())
	must(err)
	must(w.AddUpperLayer(dir))
	must(w.Close())
	var names []string
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(err)
		names = append(names, hdr.Name)
	}
	if !slices.Contains(names, "upper/dev/kept") || slices.Contains(names, "upper/dev/null") || slices.Contains(names, "upper/dev/tty") {
		t.Errorf("archived %q: want upper/dev/kept and neither device", names)
	}

	// Zero's numbers under null's name are not a pod's device.
	must(os.Remove(filepath.Join(dir, "dev/null")))
	must(unix.Mknod(filepath.Join(dir, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))))
	w, err = NewWriter(io.Discard, CompressionNone, testManifest())
	must(err)
	if err := w.AddUpperLayer(dir); errdefs.KindOf(err) != errdefs.Unsupported {
		t.Errorf("/dev/null as 1:5: %v, want Unsupported", err)
	}
	w.Close()
}
