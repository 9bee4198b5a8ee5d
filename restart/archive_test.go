package restart

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/internal/errdefs"
)

var testTime = time.Unix(1700000000, 0)

func testManifest() *checkpoint.Manifest {
	return &checkpoint.Manifest{
		FormatVersion: checkpoint.FormatVersion,
		PodctlVersion: "test",
		CreatedAt:     time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Source: checkpoint.Source{
			ISA: "amd64", CPUFeatures: []string{"sse4_2", "avx2"}, Kernel: "6.1.0",
			CRIUVersion: "4.0", Hostname: "src",
		},
		Pod:     json.RawMessage(`{"name":"web"}`),
		Network: checkpoint.Network{IP: "10.88.0.5", MAC: "02:00:0a:58:00:05", Ports: []checkpoint.PublishedPort{{HostPort: 8080, PodPort: 80, Protocol: "tcp"}}},
		Images:  checkpoint.Images{Kind: checkpoint.ImagesCRIU, PagesIncluded: true},
	}
}

func isRoot() bool { return os.Geteuid() == 0 }

// fastTempDir is a temporary directory on tmpfs (/dev/shm), where
// extracting is several times faster than on a disk, when tmpfs there
// supports the xattrs the tests set; otherwise it is t.TempDir().
func fastTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "podctl-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if unix.Setxattr(dir, "user.probe", []byte("1"), 0) != nil ||
		(isRoot() && unix.Setxattr(dir, "trusted.overlay.probe", []byte("1"), 0) != nil) {
		return t.TempDir()
	}
	return dir
}

// ---- source trees ----

// buildTrees makes a CRIU images directory and an upper layer with every
// kind of entry the format carries. small leaves out the big files. It
// returns the directories and whether root-only features were used.
func buildTrees(t testing.TB, small bool) (criuDir, upperDir string) {
	t.Helper()
	base := t.TempDir()
	criuDir = filepath.Join(base, "images")
	upperDir = filepath.Join(base, "upper")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, data []byte, mode os.FileMode) {
		t.Helper()
		must(os.WriteFile(p, data, 0o600))
		must(os.Chmod(p, mode))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	must(os.Mkdir(criuDir, 0o700))
	write(filepath.Join(criuDir, "core-1.img"), []byte("core"), 0o644)
	if !small {
		write(filepath.Join(criuDir, "inventory.img"), []byte("inventory"), 0o600)
		write(filepath.Join(criuDir, "pages-1.img"), random(300<<10), 0o600)
		must(os.Mkdir(filepath.Join(criuDir, "subdir"), 0o700)) // skipped
		must(os.Symlink("core-1.img", filepath.Join(criuDir, "link.img")))
	}

	must(os.Mkdir(upperDir, 0o700))
	u := func(rel string) string { return filepath.Join(upperDir, rel) }
	write(u("file.txt"), []byte("hello\n"), 0o644)
	must(os.Mkdir(u("dir"), 0o750))
	must(os.Symlink("../file.txt", u("dir/link")))
	must(os.Link(u("file.txt"), u("hard")))
	must(unix.Mkfifo(u("fifo"), 0o640))
	must(unix.Chmod(u("fifo"), 0o640))
	if !small {
		must(os.Mkdir(u("dir/nested"), 0o700))
		write(u("dir/nested/deep.bin"), random(1000), 0o640)
		must(os.Symlink("/etc/passwd", u("abs")))
		write(u("empty"), nil, 0o600)
		must(os.Link(u("dir/nested/deep.bin"), u("dir/hard2"))) // first in walk order
		write(u("suid"), []byte("#!/bin/sh\n"), 0o755|os.ModeSetuid)
		write(u("sgid"), []byte("#!/bin/sh\n"), 0o755|os.ModeSetgid)
		must(os.Mkdir(u("tmp"), 0o777))
		must(os.Chmod(u("tmp"), 0o777|os.ModeSticky))
		write(u(strings.Repeat("long-name-", 12)+".txt"), []byte("long"), 0o644)
		write(u("ünïcødé.txt"), []byte("utf8"), 0o644)
		must(unix.Mknod(u("sock"), unix.S_IFSOCK|0o644, 0)) // skipped
		write(u("big"), random(200<<10), 0o644)
		if err := unix.Setxattr(u("file.txt"), "user.note", []byte("a note"), 0); err != nil {
			t.Logf("no user xattrs here: %v", err)
		} else {
			must(unix.Setxattr(u("file.txt"), "user.empty", nil, 0))
		}
	}
	if isRoot() {
		must(unix.Mknod(u("wh"), unix.S_IFCHR, 0)) // overlay whiteout
		must(os.Mkdir(u("opaque"), 0o755))
		if err := unix.Setxattr(u("opaque"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			t.Logf("no trusted xattrs here: %v", err)
		} else if !small {
			must(unix.Setxattr(u("opaque"), "trusted.other", []byte("dropped"), 0))
			must(unix.Lsetxattr(u("abs"), "trusted.overlay.redirect", []byte("/x"), 0))
		}
		must(os.Lchown(u("file.txt"), 1000, 1001))
		must(os.Lchown(u("dir/link"), 1002, 1003))
		must(os.Lchown(u("wh"), 5, 6))
		must(os.Lchown(upperDir, 1000, 1000))
		if !small {
			write(u("opaque/inside"), []byte("x"), 0o644)
			must(os.Lchown(u("fifo"), 3000000, 3000001)) // needs PAX uid/gid
			must(os.Chown(u("suid"), 0, 0))
			must(os.Chmod(u("suid"), 0o755|os.ModeSetuid))
			must(os.Chown(u("sgid"), 0, 50))
			must(os.Chmod(u("sgid"), 0o755|os.ModeSetgid))
		}
	} else {
		t.Log("not root: no whiteout, opaque dir or owners in the tree")
	}
	must(unix.Setxattr(upperDir, "user.root", []byte("1"), 0))
	must(os.Chmod(upperDir, 0o751))
	// Fixed mtimes, deepest first so that setting them does not disturb
	// the parents'.
	var paths []string
	must(filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	for i := len(paths) - 1; i >= 0; i-- {
		ts := unix.Timespec{Sec: 1600000000 + int64(i)*1000, Nsec: 123}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
	}
	return criuDir, upperDir
}

// writeArchive archives criuDir and upperDir with the checkpoint Writer.
func writeArchive(t testing.TB, c checkpoint.Compression, criuDir, upperDir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := checkpoint.NewWriter(&buf, c, testManifest())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddCRIUImages(criuDir); err != nil {
		t.Fatal(err)
	}
	if err := w.AddUpperLayer(upperDir); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.BytesWritten() != int64(buf.Len()) {
		t.Fatalf("BytesWritten = %d, archive is %d bytes", w.BytesWritten(), buf.Len())
	}
	return buf.Bytes()
}

// ---- tree descriptions ----

type node struct {
	Type     string
	Mode     uint32
	UID, GID uint32
	Size     int64
	Sum      string
	Target   string
	Rdev     uint64
	Mtime    int64
	Xattrs   map[string]string
	LinkedTo string // first path (walk order) of the inode, when it has several
}

// describe lists a tree: every path relative to root, root included as ".".
// owners reports whether to compare owners (the CRIU images are owned by
// whoever restores them).
func describe(t testing.TB, root string, owners, xattrsToo bool) map[string]node {
	t.Helper()
	out := make(map[string]node)
	inodes := make(map[uint64]string)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := node{Mode: st.Mode & 0o7777, Mtime: st.Mtim.Sec}
		if owners {
			n.UID, n.GID = st.Uid, st.Gid
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			n.Type = "dir"
		case unix.S_IFREG:
			n.Type = "reg"
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.Size = int64(len(data))
			s := sha256.Sum256(data)
			n.Sum = hex.EncodeToString(s[:])
		case unix.S_IFLNK:
			n.Type = "symlink"
			n.Mode = 0
			n.Target, _ = os.Readlink(p)
		case unix.S_IFIFO:
			n.Type = "fifo"
		case unix.S_IFCHR:
			n.Type = "char"
			n.Rdev = st.Rdev
		case unix.S_IFSOCK:
			return nil // not archived
		default:
			n.Type = "other"
		}
		if st.Nlink > 1 && n.Type != "dir" {
			if first, ok := inodes[st.Ino]; ok {
				n.LinkedTo = first
			} else {
				inodes[st.Ino] = rel
				n.LinkedTo = rel
			}
		}
		if xattrsToo {
			n.Xattrs = listXattrs(t, p)
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// listXattrs returns the xattrs of p in the namespaces archives carry.
func listXattrs(t testing.TB, p string) map[string]string {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return nil
	}
	out := make(map[string]string)
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if !checkpoint.AllowedXattr(name) {
			continue
		}
		v := make([]byte, 64<<10)
		k, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		}
		out[name] = string(v[:k])
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func diffTrees(t testing.TB, what string, want, got map[string]node) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: %s missing", what, p)
			continue
		}
		if !reflect.DeepEqual(w, g) {
			t.Errorf("%s: %s:\n got %+v\nwant %+v", what, p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected %s", what, p)
		}
	}
}

type trees struct {
	criu, upper map[string]node
}

func describeSource(t testing.TB, criuDir, upperDir string) trees {
	criu := describe(t, criuDir, false, false)
	for p, n := range criu {
		if n.Type != "reg" && p != "." {
			delete(criu, p) // only regular files are archived
		}
	}
	delete(criu, ".") // created by the reader
	return trees{criu: criu, upper: describe(t, upperDir, true, true)}
}

func describeExtracted(t testing.TB, ex *Extracted) trees {
	criu := describe(t, ex.CRIUDir, false, false)
	delete(criu, ".")
	return trees{criu: criu, upper: describe(t, ex.UpperDir, true, true)}
}

func compareTrees(t testing.TB, want, got trees) {
	t.Helper()
	diffTrees(t, "criu", want.criu, got.criu)
	diffTrees(t, "upper", want.upper, got.upper)
}

// compareManifest checks m against testManifest, comparing Pod as JSON.
func compareManifest(t testing.TB, m *checkpoint.Manifest) {
	t.Helper()
	want := testManifest()
	var a, b bytes.Buffer
	json.Compact(&a, want.Pod)
	json.Compact(&b, m.Pod)
	if a.String() != b.String() {
		t.Errorf("pod = %s, want %s", b.String(), a.String())
	}
	got := *m
	got.Pod, want.Pod = nil, nil
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("manifest:\n got %+v\nwant %+v", got, *want)
	}
}

// ---- reading ----

func extractTo(data []byte, lim Limits, dest string) (*Extracted, error) {
	r, err := NewReader(bytes.NewReader(data), lim)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Extract(context.Background(), dest)
}

func extract(t testing.TB, data []byte) (*Extracted, error) {
	t.Helper()
	return extractTo(data, DefaultLimits(), filepath.Join(t.TempDir(), "x"))
}

func TestRoundTrip(t *testing.T) {
	criuDir, upperDir := buildTrees(t, false)
	want := describeSource(t, criuDir, upperDir)
	if isRoot() {
		if want.upper["wh"].Type != "char" || want.upper["hard"].LinkedTo != "file.txt" {
			t.Fatalf("source tree not as built: %+v %+v", want.upper["wh"], want.upper["hard"])
		}
	}
	if _, ok := want.upper["sock"]; ok {
		t.Fatal("describe should skip sockets")
	}
	for _, c := range []checkpoint.Compression{checkpoint.CompressionZstd, checkpoint.CompressionNone} {
		t.Run(string(c), func(t *testing.T) {
			data := writeArchive(t, c, criuDir, upperDir)
			if isZstd := bytes.HasPrefix(data, []byte(checkpoint.ZstdMagic)); isZstd != (c == checkpoint.CompressionZstd) {
				t.Fatalf("compression %s: zstd magic %v", c, isZstd)
			}
			dest := filepath.Join(t.TempDir(), "dest")
			r, err := NewReader(bytes.NewReader(data), DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			m1, err := r.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			m2, _ := r.Manifest()
			if m1 != m2 {
				t.Error("Manifest is not idempotent")
			}
			compareManifest(t, m1)
			ex, err := r.Extract(context.Background(), dest)
			if err != nil {
				t.Fatal(err)
			}
			if ex.Manifest != m1 || ex.CRIUDir != filepath.Join(dest, "criu") || ex.UpperDir != filepath.Join(dest, "upper") {
				t.Errorf("Extracted = %+v", ex)
			}
			wantEntries := len(want.criu) + len(want.upper)
			if ex.Entries != wantEntries {
				t.Errorf("Entries = %d, want %d", ex.Entries, wantEntries)
			}
			var wantBytes int64
			for _, tr := range []map[string]node{want.criu, want.upper} {
				seen := map[string]bool{}
				for _, n := range tr {
					if n.Type == "reg" && !seen[n.LinkedTo] {
						wantBytes += n.Size
						if n.LinkedTo != "" {
							seen[n.LinkedTo] = true
						}
					}
				}
			}
			if ex.Bytes != wantBytes {
				t.Errorf("Bytes = %d, want %d", ex.Bytes, wantBytes)
			}
			got := describeExtracted(t, ex)
			compareTrees(t, want, got)
			if n := got.upper["abs"]; n.Target != "/etc/passwd" {
				t.Errorf("abs symlink = %+v", n)
			}
			if isRoot() {
				if n := got.upper["suid"]; n.Mode != 0o4755 {
					t.Errorf("suid mode = %#o", n.Mode)
				}
				if n := got.upper["wh"]; n.Type != "char" || n.Rdev != 0 {
					t.Errorf("whiteout = %+v", n)
				}
				if x := got.upper["opaque"].Xattrs; x != nil && x["trusted.overlay.opaque"] != "y" {
					t.Errorf("opaque xattrs = %v", x)
				}
				if _, err := unix.Getxattr(filepath.Join(ex.UpperDir, "opaque"), "trusted.other", nil); err == nil {
					t.Error("trusted.other was carried")
				}
			}
			if x := got.upper["file.txt"].Xattrs; x != nil {
				if v, ok := x["user.empty"]; !ok || v != "" {
					t.Errorf("empty xattr not kept: %q", x)
				}
			}
			if _, err := r.Extract(context.Background(), dest); err == nil {
				t.Error("second Extract succeeded")
			}
		})
	}
}

func TestExtractIntoExisting(t *testing.T) {
	criuDir, upperDir := buildTrees(t, true)
	data := writeArchive(t, checkpoint.CompressionNone, criuDir, upperDir)
	dest := t.TempDir()
	if err := os.Mkdir(filepath.Join(dest, "upper"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := extractTo(data, DefaultLimits(), dest)
	if errdefs.KindOf(err) != errdefs.InvalidImage || !strings.Contains(err.Error(), "file exists") {
		t.Fatalf("err = %v", err)
	}
}

func TestCancel(t *testing.T) {
	criuDir, upperDir := buildTrees(t, true)
	data := writeArchive(t, checkpoint.CompressionNone, criuDir, upperDir)
	r, err := NewReader(bytes.NewReader(data), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = r.Extract(ctx, filepath.Join(t.TempDir(), "x"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// ---- crafted archives ----

type tent struct {
	hdr  tar.Header
	body string
}

func reg(name, body string) tent {
	return tent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: testTime}, body: body}
}

func dirEnt(name string) tent {
	return tent{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: testTime}}
}

func symEnt(name, target string) tent {
	return tent{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: testTime}}
}

func linkEnt(name, target string) tent {
	return tent{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644, ModTime: testTime}}
}

func devEnt(name string, typ byte, major, minor int64) tent {
	return tent{hdr: tar.Header{Typeflag: typ, Name: name, Devmajor: major, Devminor: minor, ModTime: testTime}}
}

func manifestEnt(t testing.TB, m *checkpoint.Manifest) tent {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return reg(checkpoint.ManifestName, string(data))
}

func sumOf(e tent) string {
	h := checkpoint.EntryHash(&e.hdr)
	h.Write([]byte(e.body))
	return hex.EncodeToString(h.Sum(nil))
}

// sumsEnt is a checksums.json for ents, changed by edit when not nil.
func sumsEnt(t testing.TB, ents []tent, edit func(map[string]string)) tent {
	t.Helper()
	sums := checkpoint.Checksums{Algorithm: "sha256", Entries: map[string]string{}}
	for _, e := range ents {
		sums.Entries[e.hdr.Name] = sumOf(e)
	}
	if edit != nil {
		edit(sums.Entries)
	}
	data, err := json.Marshal(sums)
	if err != nil {
		t.Fatal(err)
	}
	return reg(checkpoint.ChecksumsName, string(data))
}

// tarOf writes ents, exactly, as a PAX tar stream.
func tarOf(t testing.TB, ents []tent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// archiveOf is a well-formed archive of ents: a manifest, ents, and their
// checksums.
func archiveOf(t testing.TB, ents ...tent) []byte {
	t.Helper()
	all := append([]tent{manifestEnt(t, testManifest())}, ents...)
	all = append(all, sumsEnt(t, all, nil))
	return tarOf(t, all)
}

func withPAX(e tent, recs map[string]string) tent {
	e.hdr.PAXRecords = recs
	return e
}

func TestCraftedGood(t *testing.T) {
	// The crafting helpers make archives the reader accepts.
	data := archiveOf(t, reg("criu/a.img", "a"), dirEnt("upper"), dirEnt("upper/d"), reg("upper/d/f", "f"),
		symEnt("upper/d/l", "../../../../etc"), linkEnt("upper/h", "upper/d/f"),
		withPAX(dirEnt("upper/o"), map[string]string{"SCHILY.xattr.user.x": "1"}))
	ex, err := extract(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Entries != 7 || ex.Bytes != 2 {
		t.Errorf("Extracted = %+v", ex)
	}
	// The symlink was created, not followed.
	if target, err := os.Readlink(filepath.Join(ex.UpperDir, "d/l")); err != nil || target != "../../../../etc" {
		t.Errorf("symlink: %q %v", target, err)
	}
}

func TestRefusals(t *testing.T) {
	m := testManifest
	withVersion := func(v int) *checkpoint.Manifest { x := m(); x.FormatVersion = v; return x }
	noISA := m()
	noISA.Source.ISA = ""
	badKind := m()
	badKind.Images.Kind = "vm"
	bigManifest := m()
	bigManifest.Pod = json.RawMessage(`"` + strings.Repeat("x", 2000) + `"`)
	base := []tent{manifestEnt(t, m()), reg("criu/x", "x")}
	good := append(append([]tent{}, base...), sumsEnt(t, base, nil))
	goodTar := tarOf(t, good)
	longName := "upper/" + strings.Repeat("a", 5000)
	hugeUID := reg("upper/f", "")
	hugeUID.hdr.Uid = 1 << 33
	badMode := reg("upper/f", "")
	badMode.hdr.Mode = 0o100644
	withDev := reg("upper/f", "")
	withDev.hdr.Devmajor = 1
	withLink := reg("upper/f", "")
	withLink.hdr.Linkname = "x"
	dirWithSize := dirEnt("upper/d")
	dirWithSize.hdr.Size = 10

	cases := []struct {
		name string
		data []byte
		lim  Limits
		want string
	}{
		{"empty", nil, Limits{}, `archive: empty (no manifest.json)`},
		{"garbage", bytes.Repeat([]byte("garbage!"), 200), Limits{}, `archive: corrupt stream: archive/tar: invalid tar header`},
		{"manifest not first", tarOf(t, []tent{reg("criu/x", "x"), manifestEnt(t, m())}), Limits{}, `archive: manifest.json is not the first entry (found "criu/x")`},
		{"manifest not regular", tarOf(t, []tent{dirEnt("manifest.json")}), Limits{}, `archive: manifest.json is not a regular file`},
		{"manifest too large", archiveOf(t), Limits{MaxManifestBytes: 100}, `archive: manifest.json is \d+ bytes, over the 100-byte limit`},
		{"manifest too large by default", tarOf(t, []tent{reg("manifest.json", strings.Repeat(" ", 1<<20+1))}), Limits{}, `archive: manifest.json is 1048577 bytes, over the 1048576-byte limit`},
		{"manifest not JSON", tarOf(t, []tent{reg("manifest.json", "{")}), Limits{}, `archive: manifest.json: unexpected end of JSON input`},
		{"format version", tarOf(t, []tent{manifestEnt(t, withVersion(7))}), Limits{}, `archive: unsupported format version 7 (this podctl reads version 1)`},
		{"format version 0", tarOf(t, []tent{manifestEnt(t, withVersion(0))}), Limits{}, `archive: unsupported format version 0 (this podctl reads version 1)`},
		{"no ISA", tarOf(t, []tent{manifestEnt(t, noISA)}), Limits{}, `archive: manifest: source.isa is empty`},
		{"images kind", tarOf(t, []tent{manifestEnt(t, badKind)}), Limits{}, `archive: manifest: unknown images.kind "vm" (want "criu")`},
		{"big manifest ok", archiveOf(t, reg("criu/x", "x")), Limits{MaxManifestBytes: 2000}, ``},
		{"big manifest refused", tarOf(t, []tent{manifestEnt(t, bigManifest)}), Limits{MaxManifestBytes: 2000}, `archive: manifest.json is \d+ bytes, over the 2000-byte limit`},

		{"absolute", archiveOf(t, reg("/etc/passwd", "x")), Limits{}, `archive: entry "/etc/passwd" is an absolute path`},
		{"dotdot", archiveOf(t, reg("../x", "x")), Limits{}, `archive: entry "../x" escapes the archive`},
		{"inner dotdot", archiveOf(t, dirEnt("upper"), reg("upper/../../x", "x")), Limits{}, `archive: entry "upper/../../x" escapes the archive`},
		{"trailing dotdot", archiveOf(t, dirEnt("upper/..")), Limits{}, `archive: entry "upper/.." escapes the archive`},
		{"unclean double slash", archiveOf(t, reg("upper//x", "x")), Limits{}, `archive: entry "upper//x" is not a clean path`},
		{"unclean dot", archiveOf(t, reg("upper/./x", "x")), Limits{}, `archive: entry "upper/./x" is not a clean path`},
		{"unclean trailing slash", archiveOf(t, dirEnt("upper/d/")), Limits{}, `archive: entry "upper/d/" is not a clean path`},
		{"not UTF-8", archiveOf(t, reg("upper/\xff", "x")), Limits{}, `archive: entry "upper/\xff" is not valid UTF-8`},
		{"too long", archiveOf(t, reg(longName, "x")), Limits{}, `archive: entry "upper/a+" is longer than 4096 bytes`},
		{"unexpected prefix", archiveOf(t, reg("etc/passwd", "x")), Limits{}, `archive: unexpected entry "etc/passwd" (want criu/NAME, upper/... or volumes/NAME/...)`},
		{"criu subdir", archiveOf(t, reg("criu/a/b", "x")), Limits{}, `archive: unexpected entry "criu/a/b" (want criu/NAME, upper/... or volumes/NAME/...)`},
		{"criu itself", archiveOf(t, dirEnt("criu")), Limits{}, `archive: unexpected entry "criu" (want criu/NAME, upper/... or volumes/NAME/...)`},
		{"criu not regular", archiveOf(t, symEnt("criu/x", "/etc/passwd")), Limits{}, `archive: entry "criu/x" is not a regular file (CRIU images must be)`},
		{"criu after upper", archiveOf(t, dirEnt("upper/d"), reg("criu/x", "x")), Limits{}, `archive: entry "criu/x" is out of order (criu/ entries come before upper/ entries)`},
		{"upper root late", archiveOf(t, dirEnt("upper/d"), dirEnt("upper")), Limits{}, `archive: entry "upper" is out of order (it must be the first upper entry)`},
		{"upper root not dir", archiveOf(t, symEnt("upper", "/")), Limits{}, `archive: entry "upper" is not a directory`},
		{"duplicate", archiveOf(t, reg("upper/a", "1"), reg("upper/a", "2")), Limits{}, `archive: duplicate entry "upper/a"`},
		{"duplicate criu", archiveOf(t, reg("criu/a", "1"), reg("criu/a", "2")), Limits{}, `archive: duplicate entry "criu/a"`},
		{"duplicate manifest", archiveOf(t, manifestEnt(t, m())), Limits{}, `archive: duplicate entry "manifest.json"`},
		{"duplicate dir", archiveOf(t, dirEnt("upper/d"), dirEnt("upper/d")), Limits{}, `archive: duplicate entry "upper/d"`},
		{"through symlink", archiveOf(t, symEnt("upper/l", "/etc"), reg("upper/l/passwd", "x")), Limits{}, `archive: entry "upper/l/passwd" goes through symlink "upper/l"`},
		{"through symlink deep", archiveOf(t, dirEnt("upper/d"), symEnt("upper/d/l", ".."), dirEnt("upper/d/l/x"), reg("upper/d/l/x/y", "x")), Limits{}, `archive: entry "upper/d/l/x" goes through symlink "upper/d/l"`},
		{"through symlink to dotdot", archiveOf(t, symEnt("upper/l", "../.."), reg("upper/l/x", "x")), Limits{}, `archive: entry "upper/l/x" goes through symlink "upper/l"`},
		{"parent missing", archiveOf(t, reg("upper/a/b", "x")), Limits{}, `archive: entry "upper/a/b" comes before its parent directory "upper/a"`},
		{"parent is a file", archiveOf(t, reg("upper/a", "x"), reg("upper/a/b", "x")), Limits{}, `archive: entry "upper/a/b" is under "upper/a", which is not a directory`},
		{"parent is a hard link", archiveOf(t, dirEnt("upper/d"), reg("upper/f", "x"), linkEnt("upper/h", "upper/f"), reg("upper/h/x", "x")), Limits{}, `archive: entry "upper/h/x" is under "upper/h", which is not a directory`},
		{"hard link to criu", archiveOf(t, reg("criu/x", "x"), linkEnt("upper/h", "criu/x")), Limits{}, `archive: hard link "upper/h" points outside upper/ ("criu/x")`},
		{"hard link absolute", archiveOf(t, linkEnt("upper/h", "/etc/shadow")), Limits{}, `archive: hard link "upper/h": target "/etc/shadow" is an absolute path`},
		{"hard link dotdot", archiveOf(t, linkEnt("upper/h", "upper/../../etc/shadow")), Limits{}, `archive: hard link "upper/h": target "upper/../../etc/shadow" escapes the archive`},
		{"hard link unclean", archiveOf(t, reg("upper/f", "x"), linkEnt("upper/h", "upper//f")), Limits{}, `archive: hard link "upper/h": target "upper//f" is not a clean path`},
		{"hard link forward", archiveOf(t, linkEnt("upper/h", "upper/f"), reg("upper/f", "x")), Limits{}, `archive: hard link "upper/h" points to "upper/f", which has not been extracted before it`},
		{"hard link to itself", archiveOf(t, linkEnt("upper/h", "upper/h")), Limits{}, `archive: hard link "upper/h" points to "upper/h", which has not been extracted before it`},
		{"hard link to dir", archiveOf(t, dirEnt("upper/d"), linkEnt("upper/h", "upper/d")), Limits{}, `archive: hard link "upper/h" points to directory "upper/d"`},
		{"hard link through symlink", archiveOf(t, dirEnt("upper/d"), reg("upper/d/f", "x"), symEnt("upper/l", "d"), linkEnt("upper/h", "upper/l/f")), Limits{}, `archive: hard link "upper/h" points to "upper/l/f", which has not been extracted before it`},
		{"block device", archiveOf(t, devEnt("upper/sda", tar.TypeBlock, 8, 0)), Limits{}, `archive: entry "upper/sda" is a block device`},
		{"block device 0:0", archiveOf(t, devEnt("upper/b", tar.TypeBlock, 0, 0)), Limits{}, `archive: entry "upper/b" is a block device`},
		{"char device", archiveOf(t, devEnt("upper/null", tar.TypeChar, 1, 3)), Limits{}, `archive: entry "upper/null" is character device 1:3 (only 0:0 whiteouts are allowed)`},
		{"char device minor", archiveOf(t, devEnt("upper/c", tar.TypeChar, 0, 1)), Limits{}, `archive: entry "upper/c" is character device 0:1 (only 0:0 whiteouts are allowed)`},
		{"contiguous file", archiveOf(t, devEnt("upper/c", tar.TypeCont, 0, 0)), Limits{}, `archive: entry "upper/c" has unsupported type "7"`},
		{"global header", archiveOf(t, tent{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "g", PAXRecords: map[string]string{"path": "x"}}}), Limits{}, `archive: entry "x" has unsupported type "g"`},
		{"dir with content", archiveOf(t, dirWithSize), Limits{}, `archive: entry "upper/d" has content but is not a regular file`},
		{"device numbers", archiveOf(t, withDev), Limits{}, `archive: entry "upper/f" has device numbers but is not a device`},
		{"link target on file", archiveOf(t, withLink), Limits{}, `archive: entry "upper/f" has a link target but is not a link`},
		{"mode type bits", archiveOf(t, badMode), Limits{}, `archive: entry "upper/f" has invalid mode 0100644`},
		{"huge uid", archiveOf(t, hugeUID), Limits{}, `archive: entry "upper/f" has invalid owner 8589934592:0`},
		{"empty symlink", archiveOf(t, symEnt("upper/l", "")), Limits{}, `archive: symlink "upper/l" has an invalid target`},
		{"security xattr", archiveOf(t, withPAX(reg("upper/f", "x"), map[string]string{"SCHILY.xattr.security.capability": "caps"})), Limits{}, `archive: entry "upper/f" has unsupported PAX record "SCHILY.xattr.security.capability"`},
		{"trusted non-overlay xattr", archiveOf(t, withPAX(reg("upper/f", "x"), map[string]string{"SCHILY.xattr.trusted.foo": "1"})), Limits{}, `archive: entry "upper/f" has unsupported PAX record "SCHILY.xattr.trusted.foo"`},
		{"unknown PAX record", archiveOf(t, withPAX(reg("upper/f", "x"), map[string]string{"LIBARCHIVE.creationtime": "1"})), Limits{}, `archive: entry "upper/f" has unsupported PAX record "LIBARCHIVE.creationtime"`},

		{"no checksums", tarOf(t, base), Limits{}, `archive: truncated (no checksums.json)`},
		{"no checksums, truncated", goodTar[:len(goodTar)-1024-512-512], Limits{}, `archive: truncated (no checksums.json)`},
		{"no end marker", goodTar[:len(goodTar)-1024], Limits{}, `archive: truncated (no end-of-archive marker)`},
		{"half end marker", goodTar[:len(goodTar)-512], Limits{}, `archive: truncated (no end-of-archive marker)`},
		{"cut in content", goodTar[:1536+512+200], Limits{}, `archive: truncated (unexpected end of data)`},
		{"checksum mismatch", tarOf(t, append(append([]tent{}, base...), sumsEnt(t, []tent{base[0], reg("criu/x", "y")}, nil))), Limits{}, `archive: checksum mismatch for criu/x`},
		{"manifest checksum mismatch", tarOf(t, append(append([]tent{}, base...), sumsEnt(t, base, func(s map[string]string) {
			s["manifest.json"] = strings.Repeat("0", 64)
		}))), Limits{}, `archive: checksum mismatch for manifest.json`},
		{"checksum missing", tarOf(t, append(append([]tent{}, base...), sumsEnt(t, base, func(s map[string]string) { delete(s, "criu/x") }))), Limits{}, `archive: criu/x is missing from checksums.json`},
		{"checksum extra", tarOf(t, append(append([]tent{}, base...), sumsEnt(t, base, func(s map[string]string) { s["upper/ghost"] = s["criu/x"] }))), Limits{}, `archive: checksums.json lists "upper/ghost", which is not in the archive`},
		{"checksums algorithm", tarOf(t, append(append([]tent{}, base...), reg("checksums.json", `{"algorithm":"md5","entries":{}}`))), Limits{}, `archive: checksums.json: unsupported algorithm "md5" (want "sha256")`},
		{"checksums unknown field", tarOf(t, append(append([]tent{}, base...), reg("checksums.json", `{"algorithm":"sha256","entries":{},"x":1}`))), Limits{}, `archive: checksums.json: json: unknown field "x"`},
		{"checksums trailing JSON", tarOf(t, append(append([]tent{}, base...), reg("checksums.json", `{"algorithm":"sha256","entries":{}} {}`))), Limits{}, `archive: checksums.json: data after the JSON object`},
		{"checksums not regular", tarOf(t, append(append([]tent{}, base...), dirEnt("checksums.json"))), Limits{}, `archive: checksums.json is not a regular file`},
		{"checksums too large", tarOf(t, append(append([]tent{}, base...), reg("checksums.json", strings.Repeat(" ", 2<<20)))), Limits{}, `archive: checksums.json is 2097152 bytes, too large for 2 entries`},
		{"entry after checksums", tarOf(t, append(append([]tent{}, good...), reg("upper/late", "x"))), Limits{}, `archive: trailing data after checksums.json`},
		{"garbage after end", append(append([]byte{}, goodTar...), "garbage"...), Limits{}, `archive: trailing data after checksums.json`},
		{"too many zeros after end", append(append([]byte{}, goodTar...), make([]byte, 2<<20)...), Limits{}, `archive: trailing data after checksums.json`},
		{"zeros after end ok", append(append([]byte{}, goodTar...), make([]byte, 10240)...), Limits{}, ``},

		{"entry limit", goodTar, Limits{MaxEntries: 2}, `archive: more than 2 entries`},
		{"entry limit ok", goodTar, Limits{MaxEntries: 3}, ``},
		{"byte limit", archiveOf(t, reg("criu/big", strings.Repeat("x", 4000))), Limits{MaxTotalBytes: 4000}, `archive: content exceeds the 4000-byte limit`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := extractTo(tc.data, tc.lim, filepath.Join(t.TempDir(), "x"))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %s", tc.want)
			}
			if k := errdefs.KindOf(err); k != errdefs.InvalidImage {
				t.Errorf("kind = %d, want InvalidImage (%v)", k, err)
			}
			if !matches(tc.want, err.Error()) {
				t.Errorf("err = %s\nwant %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error has several lines: %q", err)
			}
		})
	}
}

// matches compares an error text to want, where "\d+" and "a+" in want
// stand for runs of digits and of a's.
func matches(want, got string) bool {
	re := regexp.QuoteMeta(want)
	re = strings.ReplaceAll(re, regexp.QuoteMeta(`\d+`), `\d+`)
	re = strings.ReplaceAll(re, regexp.QuoteMeta(`a+`), `a+`)
	return regexp.MustCompile("^" + re + "$").MatchString(got)
}

// TestLimitsDefault checks that a zero Limits means the defaults.
func TestLimitsDefault(t *testing.T) {
	if (Limits{}).withDefaults() != DefaultLimits() {
		t.Fatal("zero Limits is not the defaults")
	}
	d := DefaultLimits()
	if d.MaxManifestBytes != 1<<20 || d.MaxEntries != 1<<20 || d.MaxTotalBytes != 64<<30 {
		t.Fatalf("DefaultLimits = %+v", d)
	}
}

// TestManifestOnly reads just the manifest of an archive whose rest is
// broken, and of a zstd archive, then closes the reader.
func TestManifestOnly(t *testing.T) {
	data := tarOf(t, []tent{manifestEnt(t, testManifest()), reg("../evil", "x")})
	r, err := NewReader(bytes.NewReader(data), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	compareManifest(t, m)
	r.Close()

	criuDir, upperDir := buildTrees(t, true)
	zdata := writeArchive(t, checkpoint.CompressionZstd, criuDir, upperDir)
	r, err = NewReader(bytes.NewReader(zdata), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Manifest(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r.Close()

	// A dock takes plain tar streams only; the plain archive passes.
	plainOnly := DefaultLimits()
	plainOnly.PlainOnly = true
	if _, err := NewReader(bytes.NewReader(zdata), plainOnly); errdefs.KindOf(err) != errdefs.InvalidImage || !strings.Contains(err.Error(), "compressed") {
		t.Fatalf("a compressed archive where only plain ones are taken: %v", err)
	}
	r, err = NewReader(bytes.NewReader(data), plainOnly)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
}

// ---- corruption ----

// smallArchive is a small archive written by the checkpoint Writer, and
// the trees it holds.
func smallArchive(t *testing.T, c checkpoint.Compression) ([]byte, trees) {
	criuDir, upperDir := buildTrees(t, true)
	return writeArchive(t, c, criuDir, upperDir), describeSource(t, criuDir, upperDir)
}

// checkCorrupt extracts a corrupted archive, which must fail with an
// InvalidImage error or, when the corruption is in bytes no reader looks
// at, produce exactly the original tree. It reports whether it failed.
func checkCorrupt(t *testing.T, data []byte, dest string, want trees, what string) bool {
	t.Helper()
	defer os.RemoveAll(dest)
	ex, err := extractTo(data, DefaultLimits(), dest)
	if err != nil {
		if errdefs.KindOf(err) != errdefs.InvalidImage {
			t.Errorf("%s: kind %d: %v", what, errdefs.KindOf(err), err)
		}
		return true
	}
	compareTrees(t, want, describeExtracted(t, ex))
	compareManifest(t, ex.Manifest)
	if t.Failed() {
		t.Fatalf("%s: extracted a different tree", what)
	}
	return false
}

// TestFlipBytes flips every byte of a small uncompressed archive and a
// sample of the bytes of a compressed one. Extraction must fail, except
// for a flip that no reader interprets: the padding that rounds each
// entry's content up to 512 bytes (tar readers skip it, and it is outside
// every checksum), for which the extracted tree must equal the original.
// In a zstd archive the frame checksum covers the decompressed stream, so
// only a flip in a frame header field that does not change the output
// could go unnoticed; the same rule applies.
func TestFlipBytes(t *testing.T) {
	for _, c := range []checkpoint.Compression{checkpoint.CompressionNone, checkpoint.CompressionZstd} {
		t.Run(string(c), func(t *testing.T) {
			data, want := smallArchive(t, c)
			positions := make([]int, 0, len(data))
			if c == checkpoint.CompressionNone {
				for i := range data {
					positions = append(positions, i)
				}
			} else {
				rng := rand.New(rand.NewPCG(3, 4))
				for range 500 {
					positions = append(positions, rng.IntN(len(data)))
				}
				for i := 0; i < 16 && i < len(data); i++ {
					positions = append(positions, i, len(data)-1-i)
				}
			}
			dest := filepath.Join(fastTempDir(t), "x")
			tolerated := 0
			for _, i := range positions {
				bad := bytes.Clone(data)
				bad[i] ^= 0xff
				if !checkCorrupt(t, bad, dest, want, "flip at "+strconv.Itoa(i)) {
					tolerated++
				}
			}
			t.Logf("%d-byte archive: %d flips, %d in bytes no reader interprets", len(data), len(positions), tolerated)
			if c == checkpoint.CompressionNone && tolerated > len(data)/2 {
				t.Errorf("%d of %d flips went unnoticed", tolerated, len(data))
			}
		})
	}
}

// TestTruncate cuts archives at a sample of lengths: every cut must fail.
func TestTruncate(t *testing.T) {
	for _, c := range []checkpoint.Compression{checkpoint.CompressionNone, checkpoint.CompressionZstd} {
		t.Run(string(c), func(t *testing.T) {
			data, _ := smallArchive(t, c)
			var cuts []int
			for n := 0; n < len(data); n += 97 {
				cuts = append(cuts, n)
			}
			for n := max(0, len(data)-1100); n < len(data); n++ {
				cuts = append(cuts, n)
			}
			for n := 512; n < len(data); n += 512 {
				cuts = append(cuts, n-1, n)
			}
			dest := filepath.Join(fastTempDir(t), "x")
			for _, n := range cuts {
				_, err := extractTo(data[:n], DefaultLimits(), dest)
				if err == nil {
					t.Fatalf("cut at %d of %d: no error", n, len(data))
				}
				if errdefs.KindOf(err) != errdefs.InvalidImage {
					t.Errorf("cut at %d: kind %d: %v", n, errdefs.KindOf(err), err)
				}
				os.RemoveAll(dest)
			}
		})
	}
}

// BenchmarkExtractArchive extracts an archive holding a 256 MiB CRIU image
// whose 64 KiB chunks are half random, half text.
func BenchmarkExtractArchive(b *testing.B) {
	const size, chunk = 256 << 20, 64 << 10
	criuDir, upperDir := b.TempDir(), b.TempDir()
	rng := rand.NewChaCha8([32]byte{1})
	text := bytes.Repeat([]byte("podctl checkpoint page data 0123456789 "), chunk/2/39+1)[:chunk/2]
	data := make([]byte, size)
	for off := 0; off < size; off += chunk {
		rng.Read(data[off : off+chunk/2])
		copy(data[off+chunk/2:off+chunk], text)
	}
	if err := os.WriteFile(filepath.Join(criuDir, "pages-1.img"), data, 0o600); err != nil {
		b.Fatal(err)
	}
	for _, c := range []checkpoint.Compression{checkpoint.CompressionZstd, checkpoint.CompressionNone} {
		archive := writeArchive(b, c, criuDir, upperDir)
		b.Run(string(c), func(b *testing.B) {
			b.SetBytes(size)
			dir := b.TempDir()
			i := 0
			for b.Loop() {
				dest := filepath.Join(dir, strconv.Itoa(i))
				i++
				if _, err := extractTo(archive, DefaultLimits(), dest); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				os.RemoveAll(dest)
				b.StartTimer()
			}
		})
	}
}

// TestDroppedReader checks that a zstd Reader dropped after Manifest,
// without Close, does not leak the decoder's goroutines.
func TestDroppedReader(t *testing.T) {
	criuDir, upperDir := buildTrees(t, true)
	big := make([]byte, 8<<20) // big enough for the decoder to go async
	rand.NewChaCha8([32]byte{5}).Read(big)
	if err := os.WriteFile(filepath.Join(criuDir, "pages-1.img"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	data := writeArchive(t, checkpoint.CompressionZstd, criuDir, upperDir)
	runtime.GC()
	before := runtime.NumGoroutine()
	for range 20 {
		r, err := NewReader(bytes.NewReader(data), DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Manifest(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("before %d, with readers %d", before, runtime.NumGoroutine())
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		t.Errorf("%d goroutines before, %d after dropping 20 readers", before, n)
	}
}

// TestBigFile round-trips files big enough to be hashed in parallel.
func TestBigFile(t *testing.T) {
	criuDir, upperDir := t.TempDir(), t.TempDir()
	data := make([]byte, 9<<20+4321)
	rand.NewChaCha8([32]byte{5}).Read(data)
	for _, p := range []string{filepath.Join(criuDir, "pages-1.img"), filepath.Join(upperDir, "big")} {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want := describeSource(t, criuDir, upperDir)
	for _, c := range []checkpoint.Compression{checkpoint.CompressionZstd, checkpoint.CompressionNone} {
		archive := writeArchive(t, c, criuDir, upperDir)
		ex, err := extract(t, archive)
		if err != nil {
			t.Fatal(err)
		}
		compareTrees(t, want, describeExtracted(t, ex))
		// A flipped content byte is caught.
		bad := bytes.Clone(archive)
		if c == checkpoint.CompressionNone {
			bad[bytes.Index(bad, data[:64])+5<<20] ^= 1
			if _, err := extract(t, bad); err == nil || !strings.Contains(err.Error(), "checksum mismatch for") {
				t.Errorf("flipped content: %v", err)
			}
		}
	}
}

// TestManifestClaimNotAllocated checks that the size a manifest's header
// claims is not allocated before the manifest's bytes arrive.
func TestManifestClaimNotAllocated(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: checkpoint.ManifestName, Mode: 0o644, Size: 1 << 20, ModTime: testTime}); err != nil {
		t.Fatal(err)
	}
	tw.Flush()
	io.WriteString(&buf, `{"formatVersion":1`)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := NewReader(bytes.NewReader(buf.Bytes()), DefaultLimits())
	if err == nil {
		_, err = r.Manifest()
		r.Close()
	}
	runtime.ReadMemStats(&after)
	if err == nil || err.Error() != "archive: truncated (unexpected end of data)" {
		t.Errorf("err = %v", err)
	}
	n := after.TotalAlloc - before.TotalAlloc
	t.Logf("reading a manifest that claims 1 MiB and holds 18 bytes allocated %d bytes", n)
	if n > 256<<10 {
		t.Errorf("that is more than 256 KiB")
	}
}

// diskRecorder stands in for a dock's disk budget: it records what is
// reserved and refuses past max.
type diskRecorder struct{ max, reserved int64 }

func (d *diskRecorder) Reserve(n int64) error {
	if d.reserved+n > d.max {
		return errdefs.New(errdefs.Busy, "dock busy: disk budget of %d bytes in use", d.max)
	}
	d.reserved += n
	return nil
}

// TestExtractReserves checks that Extract reserves the space of what it
// extracts, by the entries' sizes (which compression may make far
// larger than the stream), and stops with the refusal, classified as
// such, when the budget runs out.
func TestExtractReserves(t *testing.T) {
	criuDir, upperDir := buildTrees(t, false)
	data := writeArchive(t, checkpoint.CompressionZstd, criuDir, upperDir)
	run := func(d *diskRecorder) (*Extracted, error) {
		r, err := NewReader(bytes.NewReader(data), DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		r.ReserveWith(d)
		return r.Extract(context.Background(), filepath.Join(t.TempDir(), "x"))
	}
	d := &diskRecorder{max: 1 << 40}
	ex, err := run(d)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d entries, %d bytes of content, %d-byte archive: reserved %d bytes", ex.Entries, ex.Bytes, len(data), d.reserved)
	if d.reserved < ex.Bytes+int64(ex.Entries)*blockSize {
		t.Errorf("reserved %d bytes for %d entries of %d bytes", d.reserved, ex.Entries, ex.Bytes)
	}
	_, err = run(&diskRecorder{max: d.reserved / 2})
	if !errdefs.Is(err, errdefs.Busy) || !strings.Contains(err.Error(), "dock busy: disk budget") {
		t.Fatalf("Extract beyond the budget: %v (kind %d)", err, errdefs.KindOf(err))
	}
}

// withVolumes is testManifest carrying the named volumes names.
func withVolumes(names ...string) *checkpoint.Manifest {
	m := testManifest()
	for i, n := range names {
		m.Volumes = append(m.Volumes, checkpoint.Volume{Name: n, ID: fmt.Sprintf("%032x", i+1)})
	}
	return m
}

// volumeArchive is a well-formed archive of m and ents.
func volumeArchive(t testing.TB, m *checkpoint.Manifest, ents ...tent) []byte {
	t.Helper()
	all := append([]tent{manifestEnt(t, m)}, ents...)
	all = append(all, sumsEnt(t, all, nil))
	return tarOf(t, all)
}

// TestVolumesExtracted extracts an archive with two named volumes after
// the upper layer, each into destDir/volumes/NAME, with a hard link and
// a symlink of their own.
func TestVolumesExtracted(t *testing.T) {
	data := volumeArchive(t, withVolumes("db", "logs"), reg("criu/a.img", "a"), dirEnt("upper"), reg("upper/f", "u"),
		dirEnt("volumes/db"), dirEnt("volumes/db/d"), reg("volumes/db/d/f", "db"), linkEnt("volumes/db/h", "volumes/db/d/f"),
		dirEnt("volumes/logs"), symEnt("volumes/logs/l", "/etc/passwd"))
	ex, err := extract(t, data)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Dir(ex.UpperDir)
	if want := []string{filepath.Join(dest, "volumes/db"), filepath.Join(dest, "volumes/logs")}; !slices.Equal(ex.VolumeDirs, want) {
		t.Errorf("VolumeDirs = %v, want %v", ex.VolumeDirs, want)
	}
	for p, want := range map[string]string{"volumes/db/d/f": "db", "volumes/db/h": "db", "upper/f": "u"} {
		if b, err := os.ReadFile(filepath.Join(dest, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", p, b, err, want)
		}
	}
	var a, b unix.Stat_t
	unix.Stat(filepath.Join(dest, "volumes/db/d/f"), &a)
	unix.Stat(filepath.Join(dest, "volumes/db/h"), &b)
	if a.Ino != b.Ino {
		t.Error("the volume's hard link is a copy")
	}
	if target, err := os.Readlink(filepath.Join(dest, "volumes/logs/l")); err != nil || target != "/etc/passwd" {
		t.Errorf("symlink: %q %v", target, err)
	}
}

func TestVolumeRefusals(t *testing.T) {
	two := withVolumes("db", "logs")
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"volume not in the manifest", volumeArchive(t, withVolumes("db"), dirEnt("upper"), dirEnt("volumes/other")),
			`archive: entry "volumes/other" is out of order or not a volume of the manifest (volumes come after upper, in the manifest's order)`},
		{"volume before upper", volumeArchive(t, two, dirEnt("volumes/db"), dirEnt("upper")),
			`archive: entry "volumes/db" is out of order or not a volume of the manifest (volumes come after upper, in the manifest's order)`},
		{"volumes out of order", volumeArchive(t, two, dirEnt("upper"), dirEnt("volumes/logs"), dirEnt("volumes/db")),
			`archive: entry "volumes/logs" is out of order or not a volume of the manifest (volumes come after upper, in the manifest's order)`},
		{"volume missing", volumeArchive(t, two, dirEnt("upper"), dirEnt("volumes/db")),
			`archive: volume logs of the manifest is not in the archive`},
		{"volume entry without its root", volumeArchive(t, two, dirEnt("upper"), reg("volumes/db/f", "x")),
			`archive: unexpected entry "volumes/db/f" (want criu/NAME, upper/... or volumes/NAME/...)`},
		{"upper entry after a volume", volumeArchive(t, two, dirEnt("upper"), dirEnt("volumes/db"), reg("upper/f", "x")),
			`archive: unexpected entry "upper/f" (want criu/NAME, upper/... or volumes/NAME/...)`},
		{"entry of an earlier volume", volumeArchive(t, two, dirEnt("upper"), dirEnt("volumes/db"), dirEnt("volumes/logs"), reg("volumes/db/f", "x")),
			`archive: unexpected entry "volumes/db/f" (want criu/NAME, upper/... or volumes/NAME/...)`},
		{"hard link into upper", volumeArchive(t, two, dirEnt("upper"), reg("upper/f", "x"), dirEnt("volumes/db"), linkEnt("volumes/db/h", "upper/f")),
			`archive: hard link "volumes/db/h" points outside volumes/db/ ("upper/f")`},
		{"volume root not a directory", volumeArchive(t, two, dirEnt("upper"), reg("volumes/db", "x")),
			`archive: entry "volumes/db" is not a directory`},
		{"volume through a symlink", volumeArchive(t, two, dirEnt("upper"), dirEnt("volumes/db"), symEnt("volumes/db/l", "/etc"), reg("volumes/db/l/passwd", "x")),
			`archive: entry "volumes/db/l/passwd" goes through symlink "volumes/db/l"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := extract(t, tc.data)
			if err == nil || errdefs.KindOf(err) != errdefs.InvalidImage || err.Error() != tc.want {
				t.Errorf("err = %v\nwant %s", err, tc.want)
			}
		})
	}
	bad := testManifest()
	bad.Volumes = []checkpoint.Volume{{Name: "Bad", ID: fmt.Sprintf("%032x", 1)}}
	if err := bad.Validate(); err == nil {
		t.Error("a manifest with an invalid volume name passed Validate")
	}
	bad.Volumes = []checkpoint.Volume{{Name: "db", ID: "short"}}
	if err := bad.Validate(); err == nil {
		t.Error("a manifest with an invalid volume id passed Validate")
	}
}

// TestVolumeRoundTrip writes the trees of buildTrees as the upper layer
// and again as a named volume with the checkpoint Writer, and finds the
// volume extracted identical to its source (modes, owners, hard links,
// symlinks, xattrs, times).
func TestVolumeRoundTrip(t *testing.T) {
	criuDir, upperDir := buildTrees(t, true)
	m := withVolumes("data")
	var buf bytes.Buffer
	w, err := checkpoint.NewWriter(&buf, checkpoint.CompressionZstd, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddCRIUImages(criuDir); err != nil {
		t.Fatal(err)
	}
	if err := w.AddVolume("data", upperDir); err == nil {
		t.Fatal("a volume was added before the upper layer")
	}
	w, _ = checkpoint.NewWriter(&buf, checkpoint.CompressionZstd, m)
	buf.Reset()
	w.AddCRIUImages(criuDir)
	if err := w.AddUpperLayer(upperDir); err != nil {
		t.Fatal(err)
	}
	if err := w.AddVolumes(m.Volumes, []string{upperDir}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ex, err := extract(t, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.VolumeDirs) != 1 {
		t.Fatalf("VolumeDirs = %v", ex.VolumeDirs)
	}
	owners := isRoot()
	diffTrees(t, "volume", describe(t, upperDir, owners, owners), describe(t, ex.VolumeDirs[0], owners, owners))
}
