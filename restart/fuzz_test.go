package restart

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/internal/errdefs"
)

// fuzzLimits keep each input cheap to extract.
var fuzzLimits = Limits{MaxManifestBytes: 64 << 10, MaxEntries: 256, MaxTotalBytes: 4 << 20}

// tinyArchive is a small well-formed archive with one entry of every kind.
func tinyArchive(t testing.TB) []byte {
	opaque := withPAX(dirEnt("upper/o"), map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y"})
	ents := []tent{reg("criu/core-1.img", "core"), dirEnt("upper"), dirEnt("upper/d"), reg("upper/d/f", "data"),
		symEnt("upper/d/l", "../d/f"), linkEnt("upper/h", "upper/d/f"), devEnt("upper/wh", tar.TypeChar, 0, 0),
		tent{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "upper/p", Mode: 0o600, ModTime: testTime}}}
	if isRoot() {
		ents = append(ents, opaque)
	}
	return archiveOf(t, ents...)
}

// seedTree is a minimal CRIU images directory and upper layer, with
// fixed times, for the seeds.
func seedTree(t testing.TB) (criuDir, upperDir string) {
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
	must(os.WriteFile(filepath.Join(criuDir, "core-1.img"), []byte("core"), 0o600))
	must(os.Mkdir(upperDir, 0o755))
	must(os.WriteFile(filepath.Join(upperDir, "f"), []byte("data"), 0o644))
	must(os.Chmod(filepath.Join(upperDir, "f"), 0o644))
	must(os.Mkdir(filepath.Join(upperDir, "d"), 0o755))
	must(os.Chmod(filepath.Join(upperDir, "d"), 0o755))
	must(os.Symlink("../f", filepath.Join(upperDir, "d", "l")))
	if isRoot() {
		must(unix.Mknod(filepath.Join(upperDir, "wh"), unix.S_IFCHR, 0))
		unix.Setxattr(filepath.Join(upperDir, "d"), "trusted.overlay.opaque", []byte("y"), 0)
	}
	for _, p := range []string{"images/core-1.img", "images", "upper/d/l", "upper/d", "upper/f", "upper/wh", "upper"} {
		ts := unix.Timespec{Sec: 1700000000}
		unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(base, p), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	}
	return criuDir, upperDir
}

// seedArchives are the fuzzing seeds committed under
// testdata/fuzz/FuzzReadArchive (regenerate them with
// PODCTL_WRITE_FUZZ_SEEDS=1 go test -run TestFuzzSeeds ./restart/).
// They are small: the fuzzer spends its time in proportion to their size
// when it minimizes what it finds.
func seedArchives(t testing.TB) map[string][]byte {
	criuDir, upperDir := seedTree(t)
	plain := writeArchive(t, checkpoint.CompressionNone, criuDir, upperDir)
	zstd := writeArchive(t, checkpoint.CompressionZstd, criuDir, upperDir)
	flipped := bytes.Clone(plain)
	flipped[bytes.Index(plain, []byte("criu/core-1.img"))+2] ^= 0xff // in the name of the entry after the manifest
	return map[string][]byte{
		"valid-none":       plain,
		"valid-zstd":       zstd,
		"truncated-none":   plain[:len(plain)/2],
		"truncated-zstd":   zstd[:len(zstd)*2/3],
		"flipped-none":     flipped,
		"dotdot":           archiveOf(t, reg("upper/../x", "x")),
		"through-symlink":  archiveOf(t, symEnt("upper/l", "../.."), reg("upper/l/x", "x")),
		"hardlink-outside": archiveOf(t, linkEnt("upper/h", "criu/x")),
	}
}

// TestFuzzSeeds checks that the committed seeds exist, or rewrites them
// with PODCTL_WRITE_FUZZ_SEEDS=1.
func TestFuzzSeeds(t *testing.T) {
	if !isRoot() {
		t.Skip("the seeds hold owners and a whiteout: they are made as root")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzReadArchive")
	write := os.Getenv("PODCTL_WRITE_FUZZ_SEEDS") == "1"
	for name, data := range seedArchives(t) {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		p := filepath.Join(dir, name)
		if write {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("seed %s: %v", name, err)
		} else if string(got) != want {
			// Not an error: the seeds depend on the filesystem (xattr
			// support) as well as on the writer.
			t.Logf("seed %s differs from what seedArchives makes here; PODCTL_WRITE_FUZZ_SEEDS=1 rewrites it", name)
		}
	}
}

// TestMain caps the time the fuzzer spends minimizing each input it finds
// (-test.fuzzminimizetime, 60s by default) at 1s unless the command line
// sets it: the inputs are tar streams of several KB and every run creates
// files, so minimizing one new input for a minute would use up a whole
// "-fuzztime=60s" run.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.fuzzminimizetime" })
	if !set {
		flag.Set("test.fuzzminimizetime", "1s")
	}
	os.Exit(m.Run())
}

func FuzzReadArchive(f *testing.F) {
	// A directory outside every extraction, which archives try to reach
	// by absolute symlinks: it must stay empty.
	sentinel, err := os.MkdirTemp("", "podctl-fuzz-outside-")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(sentinel) })

	for _, data := range seedArchives(f) {
		f.Add(data)
	}
	f.Add(tinyArchive(f))
	f.Add(tarOf(f, []tent{manifestEnt(f, testManifest())}))
	f.Add(archiveOf(f, symEnt("upper/abs", sentinel), reg("upper/abs/x", "x")))
	f.Add(archiveOf(f, dirEnt("upper/d"), symEnt("upper/d/up", "../../../../"+sentinel), dirEnt("upper/d/up/y")))
	f.Add(archiveOf(f, symEnt("upper/abs", sentinel+"/f"), linkEnt("upper/h", "upper/abs")))
	f.Add(archiveOf(f, reg("criu/a", "a"), reg("criu/b", strings.Repeat("b", 1000)), dirEnt("upper"), withPAX(reg("upper/f", "f"),
		map[string]string{"SCHILY.xattr.user.a": "1", "SCHILY.xattr.user.b": ""})))

	f.Fuzz(func(t *testing.T, data []byte) {
		base := fastTempDir(t)
		dest := filepath.Join(base, "dest")
		outside := filepath.Join(base, "outside")
		if err := os.Mkdir(outside, 0o700); err != nil {
			t.Fatal(err)
		}
		ceiling := allocCeiling(t, data)
		before := totalAlloc()
		ex, err := fuzzExtract(data, dest)
		if n := totalAlloc() - before; n > ceiling {
			t.Fatalf("extracting %d bytes allocated %d bytes, more than %d (error: %v)", len(data), n, ceiling, err)
		}
		if err != nil && errdefs.KindOf(err) != errdefs.InvalidImage {
			t.Fatalf("error of kind %d: %v", errdefs.KindOf(err), err)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("error on several lines: %q", err)
		}
		for _, d := range []string{outside, sentinel} {
			if ents, _ := os.ReadDir(d); len(ents) > 0 {
				t.Fatalf("extraction wrote to %s: %v", d, ents)
			}
		}
		ents, _ := os.ReadDir(base)
		for _, e := range ents {
			if !slices.Contains([]string{"dest", "outside"}, e.Name()) {
				t.Fatalf("extraction wrote %s beside the destination", e.Name())
			}
		}
		if err == nil {
			// Everything extracted is a real file inside dest: no path
			// in it goes through a symlink.
			for _, d := range []string{ex.CRIUDir, ex.UpperDir} {
				filepath.WalkDir(d, func(p string, _ os.DirEntry, err error) error {
					if err != nil {
						t.Fatal(err)
					}
					parent := filepath.Dir(p)
					if real, err := filepath.EvalSymlinks(parent); err != nil || real != parent {
						t.Fatalf("%s is not inside the destination (%s, %v)", p, real, err)
					}
					return nil
				})
			}
		}
	})
}

// totalAlloc returns the bytes allocated so far by the program.
func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// What extracting an archive may allocate: its fixed buffers (allocBase,
// mostly the 2 MiB bufPool holds, which a garbage collection may empty),
// allocPerByte per byte of the tar stream, which the tar headers of an
// archive of small entries come close to (archive/tar reads a PAX header
// whole and copies its records; a name is copied several times on its
// way), and, for a zstd archive, what decompressing it allocates (the
// window, up to 128 MiB, as its frames declare).
const (
	allocBase    = 4 << 20
	allocPerByte = 8
	// maxDecompressed bounds what allocCeiling decompresses.
	maxDecompressed = 64 << 20
)

// allocCeiling returns the most extracting data may allocate: nothing in
// proportion to what the archive claims (sizes, counts), only to what it
// holds.
func allocCeiling(t *testing.T, data []byte) uint64 {
	if !bytes.HasPrefix(data, []byte(checkpoint.ZstdMagic)) {
		return allocBase + allocPerByte*uint64(len(data))
	}
	before := totalAlloc()
	zr, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderMaxWindow(maxDecoderWindow))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, io.LimitReader(zr, maxDecompressed))
	zr.Close()
	return allocBase + allocPerByte*uint64(n) + (totalAlloc() - before)
}

func fuzzExtract(data []byte, dest string) (*Extracted, error) {
	r, err := NewReader(bytes.NewReader(data), fuzzLimits)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if _, err := r.Manifest(); err != nil {
		return nil, err
	}
	return r.Extract(context.Background(), dest)
}
