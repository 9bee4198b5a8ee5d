package prepare

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/podctl/podctl/internal/statedir"
)

// PreparerVersion identifies what Instrument and Asyncify produce. A cached
// preparation is reused only by a podctl with the same version; change it
// whenever the output of either changes.
const PreparerVersion = "1"

// Prepared is a prepared module.
type Prepared struct {
	// SourceHash is the SHA-256 of the module as given (zero for a
	// module received already prepared).
	SourceHash [32]byte
	// Hash is the SHA-256 of Bytes: what snapshots name.
	Hash [32]byte
	// Bytes is the prepared module.
	Bytes []byte
}

// Cache prepares modules once and keeps them by content hash in Dir:
//
//	Dir/source/SOURCEHASH-vVERSION   the hash of the module prepared from it
//	Dir/HASH.wasm                    a prepared module
type Cache struct {
	// Dir holds the cache; it is created when needed.
	Dir string
	// WasmOpt is Binaryen's wasm-opt ("" finds it on PATH).
	WasmOpt string
}

// Prepare returns module prepared: from the cache if this version of
// podctl prepared it before, otherwise by instrumenting it and running
// Asyncify, and then caching the result.
func (c Cache) Prepare(ctx context.Context, module []byte) (*Prepared, error) {
	src := sha256.Sum256(module)
	index := filepath.Join(c.Dir, "source", hex.EncodeToString(src[:])+"-v"+PreparerVersion)
	if b, err := os.ReadFile(index); err == nil {
		if hash, err := hex.DecodeString(string(b)); err == nil && len(hash) == 32 {
			if p, err := c.Load([32]byte(hash)); err == nil {
				p.SourceHash = src
				return p, nil
			}
		}
	}
	instrumented, err := Instrument(module)
	if err != nil {
		return nil, err
	}
	wasmOpt := c.WasmOpt
	if wasmOpt == "" {
		wasmOpt = "wasm-opt"
	}
	out, err := Asyncify(ctx, wasmOpt, instrumented)
	if err != nil {
		return nil, err
	}
	p, err := c.Store(out)
	if err != nil {
		return nil, err
	}
	p.SourceHash = src
	if err := os.MkdirAll(filepath.Dir(index), 0o755); err != nil {
		return nil, fmt.Errorf("prepare: cache: %w", err)
	}
	if err := statedir.WriteFileAtomic(index, []byte(hex.EncodeToString(p.Hash[:])), 0o644); err != nil {
		return nil, fmt.Errorf("prepare: cache: %w", err)
	}
	return p, nil
}

// Load returns the prepared module with the given hash, verifying it.
func (c Cache) Load(hash [32]byte) (*Prepared, error) {
	path := c.modulePath(hash)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("prepare: module sha256:%x: %w", hash[:8], err)
	}
	if sha256.Sum256(b) != hash {
		return nil, fmt.Errorf("prepare: cached module %s is corrupt (its hash does not match its name)", path)
	}
	return &Prepared{Hash: hash, Bytes: b}, nil
}

// Store caches a prepared module received from another host.
func (c Cache) Store(prepared []byte) (*Prepared, error) {
	if len(prepared) < 8 || string(prepared[:4]) != "\x00asm" {
		return nil, errors.New("prepare: not a WebAssembly module")
	}
	hash := sha256.Sum256(prepared)
	path := c.modulePath(hash)
	if _, err := os.Stat(path); err != nil {
		if err := os.MkdirAll(c.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("prepare: cache: %w", err)
		}
		if err := statedir.WriteFileAtomic(path, prepared, 0o644); err != nil {
			return nil, fmt.Errorf("prepare: cache: %w", err)
		}
	}
	return &Prepared{Hash: hash, Bytes: prepared}, nil
}

func (c Cache) modulePath(hash [32]byte) string {
	return filepath.Join(c.Dir, hex.EncodeToString(hash[:])+".wasm")
}
