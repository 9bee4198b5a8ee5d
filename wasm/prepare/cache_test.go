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
