package test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// The archives of one checkpoint of a counting pod, and what they came
// from.
type goodArchives struct {
	dir   string // where they are (and the bad ones derived from them go)
	plain string // --compress none
	zstd  string // --compress zstd
	ip    string // the checkpointed pod's address
}

// makeArchives checkpoints a counting pod named src into a plain and a
// zstd archive, then removes it, freeing its name and address.
func makeArchives(t *testing.T, h *harness.Host) goodArchives {
	t.Helper()
	h.MustPodctl("create", "--name", "src", "--", "sh", "-c", `i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done`)
	waitLog(t, h, "src", "3\n")
	a := goodArchives{dir: t.TempDir(), ip: h.Inspect("src").Endpoint.IP}
	a.plain = filepath.Join(a.dir, "good.tar")
	a.zstd = filepath.Join(a.dir, "good.tar.zst")
	h.MustPodctl("checkpoint", "--leave-running", "-o", a.plain, "--compress", "none", "src")
	h.MustPodctl("checkpoint", "-o", a.zstd, "--compress", "zstd", "src")
	h.MustPodctl("rm", "-f", "src")
	return a
}

// tarEntry is an entry of a tar archive and where it lies in the file.
type tarEntry struct {
	hdr  *tar.Header
	data []byte
	// hdrOff is the offset of the entry's own header block (after any PAX
	// extended header); dataOff that of its content.
	hdrOff, dataOff int64
}

// countingReader counts what is read through it. It is not an io.Seeker,
// so archive/tar reads (rather than seeks over) everything, and the count
// after Next is the offset of the entry's content.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readTar splits a plain tar archive into its entries.
func readTar(t *testing.T, b []byte) []tarEntry {
	t.Helper()
	cr := &countingReader{r: bytes.NewReader(b)}
	tr := tar.NewReader(cr)
	var entries []tarEntry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil {
			t.Fatalf("read the good archive: %v", err)
		}
		off := cr.n
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s in the good archive: %v", hdr.Name, err)
		}
		entries = append(entries, tarEntry{hdr: hdr, data: data, hdrOff: off - 512, dataOff: off})
	}
}

// writeTar writes entries as a tar archive, each header's size set to its
// data's.
func writeTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := *e.hdr
		hdr.Size = int64(len(e.data))
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("write entry %q: %v", hdr.Name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatalf("write entry %q: %v", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// withManifest returns the archive with its manifest changed by edit (the
// top-level JSON fields, raw), everything else, checksums.json included,
// as it was.
func withManifest(t *testing.T, entries []tarEntry, edit func(m map[string]json.RawMessage)) []byte {
	t.Helper()
	if entries[0].hdr.Name != "manifest.json" {
		t.Fatalf("first entry is %q", entries[0].hdr.Name)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(entries[0].data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out := slices.Clone(entries)
	out[0].data = data
	return writeTar(t, out)
}

// withEntries returns the archive with extra entries inserted just before
// checksums.json (which is left as it was).
func withEntries(t *testing.T, entries []tarEntry, extra ...tarEntry) []byte {
	t.Helper()
	last := len(entries) - 1
	if entries[last].hdr.Name != "checksums.json" {
		t.Fatalf("last entry is %q", entries[last].hdr.Name)
	}
	out := slices.Concat(entries[:last], extra, entries[last:])
	return writeTar(t, out)
}

// hostileEntry is an upper-layer-like entry of type typ.
func hostileEntry(name string, typ byte, linkname, content string) tarEntry {
	return tarEntry{
		hdr: &tar.Header{Name: name, Typeflag: typ, Linkname: linkname, Mode: 0o644,
			ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX},
		data: []byte(content),
	}
}

// flipped returns b with the byte at off inverted.
func flipped(b []byte, off int64) []byte {
	c := slices.Clone(b)
	c[off] ^= 0xff
	return c
}

// checkRefused runs `podctl restore ARGS...` and checks that it fails with
// status code and one line of stderr containing msg, and that it left
// nothing: the host's snapshot and podctl's scratch directory are as
// before, and the pods are exactly wantPods.
func checkRefused(t *testing.T, h *harness.Host, args []string, code int, msg string, wantPods ...string) {
	t.Helper()
	before := h.Snapshot()
	scratchBefore := scratch(h)
	r := h.Podctl(append([]string{"restore"}, args...)...)
	if r.Code == 0 {
		t.Errorf("podctl restore %s succeeded (stdout %q), want exit %d", strings.Join(args, " "), r.Stdout, code)
		pods, _ := h.Pods()
		for _, p := range pods {
			if !slices.Contains(wantPods, p.Name) {
				h.Podctl("rm", "-f", p.Name)
			}
		}
		return
	}
	t.Logf("podctl restore %s: exit %d: %s", strings.Join(args, " "), r.Code, strings.TrimSpace(r.Stderr))
	if r.Code != code {
		t.Errorf("podctl restore %s: exit %d, want %d (stderr %q)", strings.Join(args, " "), r.Code, code, r.Stderr)
	}
	checkOneLine(t, r.Stderr, msg)
	if diff := before.Diff(h.Snapshot()); diff != "" {
		t.Errorf("podctl restore %s left behind:\n%s", strings.Join(args, " "), diff)
	}
	if got := scratch(h); !slices.Equal(got, scratchBefore) {
		t.Errorf("podctl restore %s left scratch files: before %q, after %q", strings.Join(args, " "), scratchBefore, got)
	}
	pods, err := h.Pods()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pods {
		names = append(names, p.Name+" ("+p.Status+")")
	}
	var want []string
	for _, n := range wantPods {
		want = append(want, n+" (running)")
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("after podctl restore %s, pods are %q, want %q", strings.Join(args, " "), names, want)
	}
}

// scratch lists podctl's scratch directory (where restores stage).
func scratch(h *harness.Host) []string {
	l, _ := filepath.Glob(filepath.Join(h.Root, "tmp", "*"))
	return l
}

// TestRestoreBadArchives restores archives derived from a good one by
// corruption, truncation, manifest edits and hostile entries, and checks
// that each is refused with its exit status and one line of error, before
// anything of it is left on the host.
func TestRestoreBadArchives(t *testing.T) {
	h := newHost(t)
	a := makeArchives(t, h)

	// Sanity: the good archive restores (and rm frees its address again).
	h.MustPodctl("restore", a.plain, "--name", "ok1")
	if p := h.Inspect("ok1"); p.Status != "running" || p.Endpoint.IP != a.ip {
		t.Fatalf("restored ok1: status %s, address %s; want running on %s", p.Status, p.Endpoint.IP, a.ip)
	}
	h.MustPodctl("rm", "-f", "ok1")

	good, err := os.ReadFile(a.plain)
	if err != nil {
		t.Fatal(err)
	}
	goodZst, err := os.ReadFile(a.zstd)
	if err != nil {
		t.Fatal(err)
	}
	entries := readTar(t, good)
	if len(entries) < 4 || entries[0].hdr.Name != "manifest.json" || entries[len(entries)-1].hdr.Name != "checksums.json" {
		t.Fatalf("unexpected good archive layout: %d entries", len(entries))
	}
	manifest, sums := entries[0], entries[len(entries)-1]
	var criu []tarEntry
	for _, e := range entries {
		if strings.HasPrefix(e.hdr.Name, "criu/") && e.hdr.Size > 0 {
			criu = append(criu, e)
		}
	}
	if len(criu) < 2 {
		t.Fatalf("good archive has %d non-empty CRIU images", len(criu))
	}
	largest := slices.MaxFunc(criu, func(x, y tarEntry) int { return int(x.hdr.Size - y.hdr.Size) })
	lastBeforeSums := entries[len(entries)-2]
	fv := int64(bytes.Index(manifest.data, []byte(`"formatVersion"`)))
	if fv < 0 {
		t.Fatalf("no formatVersion in manifest %s", manifest.data)
	}

	type badCase struct {
		name string
		file string // archive to restore (default: the case's data written to a file)
		data []byte
		note string // logged: where the archive was damaged
		code int
		msg  string
	}
	var cases []badCase

	// Flipped bytes. Every offset is inside an entry's header block or
	// content, never in the padding between entries (which tar readers
	// skip and no checksum covers, so a flip there may be harmless); the
	// one exception is the end-of-archive marker, which the format
	// requires to be zeros. So every one of them must be refused: a
	// restore that succeeds fails the test.
	flips := []struct {
		what string
		off  int64
		msg  string
		in   string // the entry flipped, logged
	}{
		{"manifest header name", manifest.hdrOff, "archive: corrupt stream", "manifest.json"},
		{"manifest first byte", manifest.dataOff, "archive: manifest.json", "manifest.json"},
		{"manifest formatVersion key", manifest.dataOff + fv + 1, "unsupported format version 0", "manifest.json"},
		{"first criu header checksum", criu[0].hdrOff + 148, "archive: corrupt stream", criu[0].hdr.Name},
		{"first criu content", criu[0].dataOff + criu[0].hdr.Size/2, "checksum mismatch for " + criu[0].hdr.Name, criu[0].hdr.Name},
		{"largest criu content", largest.dataOff + largest.hdr.Size/3, "checksum mismatch for " + largest.hdr.Name, largest.hdr.Name},
		{"last criu byte", criu[len(criu)-1].dataOff + criu[len(criu)-1].hdr.Size - 1, "checksum mismatch for " + criu[len(criu)-1].hdr.Name, criu[len(criu)-1].hdr.Name},
		{"typeflag of the last upper entry", lastBeforeSums.hdrOff + 156, "archive: corrupt stream", lastBeforeSums.hdr.Name},
		{"checksums.json header size", sums.hdrOff + 124, "archive: corrupt stream", "checksums.json"},
		{"checksums.json first byte", sums.dataOff, "archive: checksums.json", "checksums.json"},
		{"checksums.json middle", sums.dataOff + sums.hdr.Size/2, "archive:", "checksums.json"},
		{"checksums.json last byte", sums.dataOff + sums.hdr.Size - 1, "archive: checksums.json", "checksums.json"},
		{"end-of-archive marker", int64(len(good)) - 512, "trailing data after checksums.json", "(after the last entry)"},
	}
	for _, f := range flips {
		cases = append(cases, badCase{name: "flip " + f.what, note: fmt.Sprintf("byte %d of %d flipped, in %s", f.off, len(good), f.in),
			data: flipped(good, f.off), code: exitInvalidImage, msg: f.msg})
	}
	// zstd: the frame header, the middle of the compressed data, the
	// frame's content checksum.
	for _, f := range []struct {
		what string
		off  int64
	}{{"frame header", 4}, {"middle", int64(len(goodZst)) / 2}, {"content checksum", int64(len(goodZst)) - 1}} {
		cases = append(cases, badCase{name: "zstd flip " + f.what, note: fmt.Sprintf("byte %d of %d flipped", f.off, len(goodZst)),
			data: flipped(goodZst, f.off), code: exitInvalidImage, msg: "archive:"})
	}

	// Truncations.
	for _, tr := range []struct {
		what string
		n    int
	}{{"to 0", 0}, {"to 100", 100}, {"to half", len(good) / 2}, {"by one byte", len(good) - 1}} {
		cases = append(cases, badCase{name: "truncated " + tr.what, note: fmt.Sprintf("%d of %d bytes", tr.n, len(good)),
			data: good[:tr.n], code: exitInvalidImage, msg: "archive: "})
	}
	cases = append(cases, badCase{name: "zstd truncated to half", data: goodZst[:len(goodZst)/2], code: exitInvalidImage, msg: "archive: "})

	// Manifest edits (checksums.json left as it was: these are refused
	// before the checksums are read).
	cases = append(cases, badCase{name: "format version 99", code: exitInvalidImage, msg: "unsupported format version 99",
		data: withManifest(t, entries, func(m map[string]json.RawMessage) { m["formatVersion"] = json.RawMessage("99") })})
	foreign := "arm64"
	if runtime.GOARCH == foreign {
		foreign = "amd64"
	}
	cases = append(cases, badCase{name: "source ISA " + foreign, code: exitUnsupported, msg: foreign,
		data: withManifest(t, entries, func(m map[string]json.RawMessage) {
			var src map[string]json.RawMessage
			if err := json.Unmarshal(m["source"], &src); err != nil {
				t.Fatal(err)
			}
			src["isa"] = json.RawMessage(`"` + foreign + `"`)
			m["source"], _ = json.Marshal(src)
		})})

	// Hostile entries.
	cases = append(cases,
		badCase{name: "dot-dot entry", code: exitInvalidImage, msg: `"upper/../evil"`,
			data: withEntries(t, entries, hostileEntry("upper/../evil", tar.TypeReg, "", "evil\n"))},
		badCase{name: "absolute entry", code: exitInvalidImage, msg: `"/etc/evil"`,
			data: withEntries(t, entries, hostileEntry("/etc/evil", tar.TypeReg, "", "evil\n"))},
		badCase{name: "entry through symlink", code: exitInvalidImage, msg: `"upper/link/passwd" goes through symlink "upper/link"`,
			data: withEntries(t, entries,
				hostileEntry("upper/link", tar.TypeSymlink, "/etc", ""),
				hostileEntry("upper/link/passwd", tar.TypeReg, "", "evil::0:0::/:/bin/sh\n"))},
	)

	// Not archives at all.
	garbage := make([]byte, 64<<10)
	rand.New(rand.NewSource(1)).Read(garbage)
	garbage[0] = 'G' // not the zstd magic
	notArchive := filepath.Join(a.dir, "a-directory")
	if err := os.Mkdir(notArchive, 0o755); err != nil {
		t.Fatal(err)
	}
	cases = append(cases,
		badCase{name: "garbage", data: garbage, code: exitInvalidImage, msg: "archive: "},
		badCase{name: "empty file", data: []byte{}, code: exitInvalidImage, msg: "archive: "},
		badCase{name: "directory", file: notArchive, code: exitInvalidImage, msg: "archive: "},
		badCase{name: "missing file", file: filepath.Join(a.dir, "no-such.tar"), code: exitNotFound, msg: "no-such.tar"},
	)

	passwd := fileDigest(t, "/etc/passwd")
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.note != "" {
				t.Log(tc.note)
			}
			file := tc.file
			if file == "" {
				file = filepath.Join(a.dir, fmt.Sprintf("bad-%02d.tar", i))
				if err := os.WriteFile(file, tc.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			checkRefused(t, h, []string{file, "--name", "bad"}, tc.code, tc.msg)
		})
	}

	// Nothing the hostile entries name was written anywhere.
	for _, p := range []string{"/etc/evil", "/evil", filepath.Join(filepath.Dir(h.Root), "evil"), filepath.Join(h.Root, "evil"), filepath.Join(a.dir, "evil")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s exists after restoring hostile archives", p)
		}
	}
	if cwd, _ := os.Getwd(); cwd != "" {
		if _, err := os.Lstat(filepath.Join(cwd, "evil")); err == nil {
			t.Errorf("evil exists in the working directory %s", cwd)
		}
	}
	filepath.WalkDir(h.Root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && (d.Name() == "evil" || d.Name() == "link") {
			t.Errorf("%s left in podctl's root", p)
		}
		return nil
	})
	if got := fileDigest(t, "/etc/passwd"); got != passwd {
		t.Errorf("/etc/passwd changed while restoring hostile archives")
	}

	// After all that, the host still restores the good archive: every
	// refusal gave back the name and address it had reserved.
	h.MustPodctl("restore", a.zstd, "--name", "ok2")
	if p := h.Inspect("ok2"); p.Status != "running" || p.Endpoint.IP != a.ip {
		t.Fatalf("restored ok2: status %s, address %s; want running on %s", p.Status, p.Endpoint.IP, a.ip)
	}
	harness.Eventually(t, 10*time.Second, func() error {
		if n := consecutive(t, "log of ok2", h.MustPodctl("logs", "ok2")); n < 6 {
			return fmt.Errorf("ok2 has counted to %d only", n)
		}
		return nil
	})
}

func fileDigest(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// TestRestoreConflicts restores a good archive while another pod has its
// address, then its name. Addresses are handed out round-robin, so the
// pod that takes the archived address is made on a second host, where it
// is the first pod and gets the first address, as the archived pod did
// on the first.
func TestRestoreConflicts(t *testing.T) {
	src, h := newHost(t), newHost(t)
	a := makeArchives(t, src)
	const first = "10.88.0.2" // a host's first pod address
	if a.ip != first {
		t.Fatalf("the first pod on a fresh host got %s, want %s", a.ip, first)
	}
	h.MustPodctl("create", "--name", "holder", "--", "sleep", "1000")
	if ip := h.Inspect("holder").Endpoint.IP; ip != a.ip {
		t.Fatalf("holder, the first pod on its host, got %s, want %s", ip, a.ip)
	}
	checkRefused(t, h, []string{a.plain}, exitConflict, a.ip, "holder")
	checkRefused(t, h, []string{a.zstd, "--name", "other"}, exitConflict, a.ip, "holder")

	// A name in use, the address free.
	h.MustPodctl("create", "--name", "named", "--", "sleep", "1000")
	if ip := h.Inspect("named").Endpoint.IP; ip == a.ip {
		t.Fatalf("named got the archived pod's address %s", ip)
	}
	h.MustPodctl("rm", "-f", "holder")
	checkRefused(t, h, []string{a.plain, "--name", "named"}, exitAlreadyExists, "already exists", "named")
	if p := h.Inspect("named"); p.Status != "running" {
		t.Errorf("named is %s after a restore tried to take its name", p.Status)
	}
}
