package prepare

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	wasmOpt := wasmOptPath(t)
	ctx := context.Background()
	module := buildC(t, "spin", "-O2")
	c := Cache{Dir: filepath.Join(t.TempDir(), "cache"), WasmOpt: wasmOpt}

	p, err := c.Prepare(ctx, module)
	if err != nil {
		t.Fatal(err)
	}
	if p.SourceHash != sha256.Sum256(module) || p.Hash != sha256.Sum256(p.Bytes) {
		t.Fatal("Prepare returned wrong hashes")
	}
	if start, err := stripRewind(p.Bytes); err != nil || string(p.Start) != string(start) {
		t.Fatalf("Prepare returned a start module of %d bytes; stripRewind gives %d (%v)", len(p.Start), len(start), err)
	}

	// A second preparation comes from the cache: no wasm-opt runs.
	noOpt := Cache{Dir: c.Dir, WasmOpt: filepath.Join(t.TempDir(), "no-wasm-opt")}
	again, err := noOpt.Prepare(ctx, module)
	if err != nil {
		t.Fatalf("second Prepare ran wasm-opt: %v", err)
	}
	if again.Hash != p.Hash || again.SourceHash != p.SourceHash || string(again.Bytes) != string(p.Bytes) || string(again.Start) != string(p.Start) {
		t.Fatal("second Prepare returned another module")
	}

	loaded, err := c.Load(p.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if string(loaded.Bytes) != string(p.Bytes) || string(loaded.Start) != string(p.Start) {
		t.Fatal("Load returned another module")
	}
	// A damaged start module is done without.
	startHash := sha256.Sum256(p.Start)
	startPath := filepath.Join(c.Dir, hex.EncodeToString(startHash[:])+".wasm")
	if err := os.WriteFile(startPath, []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	if loaded, err := c.Load(p.Hash); err != nil || loaded.Start != nil {
		t.Fatalf("Load with a damaged start module: %v, start module of %d bytes", err, len(loaded.Start))
	}
	if _, err := c.Load(sha256.Sum256([]byte("nothing"))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing module: %v, want fs.ErrNotExist", err)
	}

	// Damage the cached module: Load notices, Prepare cannot use it (and
	// would need wasm-opt), and a real Prepare replaces it.
	path := filepath.Join(c.Dir, hex.EncodeToString(p.Hash[:])+".wasm")
	damaged := append([]byte(nil), p.Bytes...)
	damaged[len(damaged)/2] ^= 0xFF
	if err := os.WriteFile(path, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(p.Hash); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Load of a damaged module: %v, want ErrCorrupt", err)
	}
	if _, err := noOpt.Prepare(ctx, module); err == nil {
		t.Fatal("Prepare used a damaged module")
	}
	if repaired, err := c.Prepare(ctx, module); err != nil || repaired.Hash != p.Hash {
		t.Fatalf("Prepare after damage: %v", err)
	}
	if _, err := c.Load(p.Hash); err != nil {
		t.Fatalf("the damaged module was not replaced: %v", err)
	}

	// A module prepared elsewhere.
	other := Cache{Dir: filepath.Join(t.TempDir(), "other")}
	stored, err := other.Store(p.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Hash != p.Hash || stored.SourceHash != ([32]byte{}) {
		t.Fatalf("Store returned %x (source %x)", stored.Hash, stored.SourceHash)
	}
	if loaded, err := other.Load(p.Hash); err != nil || loaded.Start != nil {
		t.Fatalf("Load of a stored module: %v, start module of %d bytes", err, len(loaded.Start))
	}
	if _, err := other.Store([]byte("not wasm")); err == nil {
		t.Fatal("Store accepted something that is not a module")
	}
	// No temporary file is left behind.
	for _, dir := range []string{c.Dir, filepath.Join(c.Dir, "source"), filepath.Join(c.Dir, "start"), other.Dir} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("temporary file %s left in %s", e.Name(), dir)
			}
		}
	}
}

// fakeModule returns distinct bytes that Store takes for a prepared
// module (it checks only the header).
func fakeModule(name string, size int) []byte {
	b := append([]byte("\x00asm\x01\x00\x00\x00"), name...)
	return append(b, make([]byte, size)...)
}

// TestCacheEntriesAndRemove checks what Entries reports (a start module
// counted with its prepared module, the time of last use) and that
// Remove takes a module out with its start module and index entries,
// leaving the others.
func TestCacheEntriesAndRemove(t *testing.T) {
	c := Cache{Dir: filepath.Join(t.TempDir(), "cache")}
	if ents, err := c.Entries(); err != nil || len(ents) != 0 {
		t.Fatalf("Entries of a cache not made yet: %v, %v", ents, err)
	}
	a, err := c.Store(fakeModule("a", 1000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store(fakeModule("a", 1000)); err != nil {
		t.Fatalf("Store of a cached module: %v", err)
	}
	start, err := c.Store(fakeModule("a-start", 500))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.writeIndex(c.startPath(a.Hash), start.Hash); err != nil {
		t.Fatal(err)
	}
	if err := c.writeIndex(c.sourcePath([32]byte{1}), a.Hash); err != nil {
		t.Fatal(err)
	}
	b, err := c.Store(fakeModule("b", 3000))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.writeIndex(c.sourcePath([32]byte{2}), b.Hash); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(c.modulePath(a.Hash), old, old)
	if _, err := c.Load(a.Hash); err != nil {
		t.Fatal(err)
	}
	ents, err := c.Entries()
	if err != nil {
		t.Fatal(err)
	}
	got := map[[32]byte]Entry{}
	for _, e := range ents {
		got[e.Hash] = e
	}
	if len(got) != 2 || got[a.Hash].Bytes != int64(len(a.Bytes)+len(start.Bytes)) || got[b.Hash].Bytes != int64(len(b.Bytes)) {
		t.Fatalf("Entries = %+v", ents)
	}
	if c.Bytes(a.Hash) != got[a.Hash].Bytes || c.Bytes([32]byte{9}) != 0 {
		t.Errorf("Bytes = %d, %d; want %d, 0", c.Bytes(a.Hash), c.Bytes([32]byte{9}), got[a.Hash].Bytes)
	}
	if time.Since(got[a.Hash].Used) > time.Minute {
		t.Errorf("Load did not record the module as used: %v", got[a.Hash].Used)
	}

	if err := c.Remove(a.Hash); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{c.modulePath(a.Hash), c.modulePath(start.Hash), c.startPath(a.Hash), c.sourcePath([32]byte{1})} {
		if _, err := os.Stat(gone); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Remove left %s", gone)
		}
	}
	if _, err := c.Load(b.Hash); err != nil {
		t.Errorf("Remove of another module took b: %v", err)
	}
	if _, err := os.Stat(c.sourcePath([32]byte{2})); err != nil {
		t.Errorf("Remove of another module took b's index entry: %v", err)
	}
	if err := c.Remove(a.Hash); err != nil {
		t.Errorf("Remove of a module that is gone: %v", err)
	}
}

// TestCacheDamagedIndex checks that an index file too long for a hash is
// taken as damaged, not a crash.
func TestCacheDamagedIndex(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "index")
	if err := os.WriteFile(path, []byte(strings.Repeat("ab", 40)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := readIndex(path); ok {
		t.Fatal("a damaged index entry was read")
	}
}
