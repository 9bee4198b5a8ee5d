package prepare

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/podctl/podctl/internal/statedir"
)

// PreparerVersion identifies what Instrument and Asyncify produce. A cached
// preparation is reused only by a podctl with the same version: change it
// whenever the output of either changes for the same input.
const PreparerVersion = "4"

// ErrCorrupt is returned (wrapped) for a cached prepared module whose
// contents do not have the hash it is filed under.
var ErrCorrupt = errors.New("corrupt prepared module")

// Prepared is a prepared module.
type Prepared struct {
	// SourceHash is the SHA-256 of the module as given to Prepare (zero
	// for a module loaded or stored already prepared).
	SourceHash [32]byte
	// Hash is the SHA-256 of Bytes: what snapshots name.
	Hash [32]byte
	// Bytes is the prepared module.
	Bytes []byte
	// Start is its start module, which a fresh vessel runs: Bytes with
	// the code only a rewind runs taken out (see ARCHITECTURE.md, "The
	// start module"). It is nil if there is none: for a module that
	// could not be split, or one received from another host to resume.
	Start []byte
}

// Cache prepares modules once and keeps them by content hash in Dir, so
// that each module is prepared once (wasm-opt takes tens of seconds on a
// Go module):
//
//	Dir/HASH.wasm                   a prepared module, named by its hash
//	Dir/source/SOURCEHASH-vVERSION  the hash of the module prepared from
//	                                SOURCEHASH by PreparerVersion VERSION
//	Dir/start/HASH                  the hash of the start module of the
//	                                prepared module HASH, itself kept as
//	                                Dir/STARTHASH.wasm
//
// Files are written atomically (a temporary file, fsync, rename): a reader
// sees a whole file or none, and concurrent preparations of one module
// write the same bytes. A prepared module is checked against its hash
// whenever it is read.
type Cache struct {
	// Dir holds the cache; it is created when needed.
	Dir string
	// WasmOpt is Binaryen's wasm-opt ("" finds it on PATH).
	WasmOpt string
}

// Prepare returns module prepared: from the cache if this version of
// podctl prepared it before, otherwise by instrumenting it and running
// Asyncify, and then caching the result. An entry found corrupt is
// prepared again and replaced.
func (c Cache) Prepare(ctx context.Context, module []byte) (*Prepared, error) {
	src := sha256.Sum256(module)
	index := c.sourcePath(src)
	if hash, ok := readIndex(index); ok {
		p, err := c.Load(hash)
		if err == nil {
			p.SourceHash = src
			return p, nil
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	// No entry, a damaged one, or one whose module is gone: prepare.

	instrumented, err := Instrument(module)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	out, err := Asyncify(ctx, c.WasmOpt, instrumented)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	start, err := stripRewind(out)
	if err != nil && !errors.Is(err, errNoSplit) {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	p, err := c.Store(out)
	if err != nil {
		return nil, err
	}
	if start != nil {
		sp, err := c.Store(start)
		if err != nil {
			return nil, err
		}
		if err := c.writeIndex(c.startPath(p.Hash), sp.Hash); err != nil {
			return nil, err
		}
		p.Start = start
	}
	p.SourceHash = src
	if err := c.writeIndex(index, p.Hash); err != nil {
		return nil, err
	}
	return p, nil
}

// writeIndex writes an index file: the hash of the module it points to.
func (c Cache) writeIndex(path string, hash [32]byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("prepare: cache: %w", err)
	}
	if err := statedir.WriteFileAtomic(path, []byte(hex.EncodeToString(hash[:])), 0o644); err != nil {
		return fmt.Errorf("prepare: cache: %w", err)
	}
	return nil
}

// readIndex returns the hash an index file holds; ok is false if the
// file is missing or damaged.
func readIndex(path string) (hash [32]byte, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return hash, false
	}
	return parseHex(string(bytes.TrimSpace(b)))
}

// Load returns the prepared module with the given hash, after checking
// that its contents have that hash, and records it as used now (see
// Entries). The error wraps fs.ErrNotExist when the cache does not have
// it, and ErrCorrupt when its contents differ.
func (c Cache) Load(hash [32]byte) (*Prepared, error) {
	path := c.modulePath(hash)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("prepare: module sha256:%x: %w", hash[:8], err)
	}
	if sha256.Sum256(b) != hash {
		return nil, fmt.Errorf("prepare: cached module %s: %w: its hash does not match its name", path, ErrCorrupt)
	}
	touch(path)
	p := &Prepared{Hash: hash, Bytes: b}
	// The start module only spares a fresh vessel some compilation: one
	// that is missing or damaged is done without.
	if sh, ok := readIndex(c.startPath(hash)); ok {
		if sp, err := c.Load(sh); err == nil {
			p.Start = sp.Bytes
		}
	}
	return p, nil
}

// Store caches a prepared module, such as one received from another host,
// and returns it with its hash. A cached copy that is damaged is replaced;
// one that is whole is recorded as used now.
func (c Cache) Store(prepared []byte) (*Prepared, error) {
	if !bytes.HasPrefix(prepared, header) {
		return nil, errors.New("prepare: store: not a WebAssembly 1.0 binary module")
	}
	hash := sha256.Sum256(prepared)
	if err := c.verify(hash); err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if err := os.MkdirAll(c.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("prepare: cache: %w", err)
		}
		if err := statedir.WriteFileAtomic(c.modulePath(hash), prepared, 0o644); err != nil {
			return nil, fmt.Errorf("prepare: cache: %w", err)
		}
	} else {
		touch(c.modulePath(hash))
	}
	return &Prepared{Hash: hash, Bytes: prepared}, nil
}

// Has reports whether the cache holds the prepared module hash, whole,
// and records it as used now: what a peer that asks is about to rely on.
// Unlike Load, it does not read the module into memory.
func (c Cache) Has(hash [32]byte) bool {
	if c.verify(hash) != nil {
		return false
	}
	touch(c.modulePath(hash))
	return true
}

// verify checks that the cache holds the prepared module hash, whole,
// reading it through a hash rather than into memory. Its error is Load's.
func (c Cache) verify(hash [32]byte) error {
	path := c.modulePath(hash)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("prepare: module sha256:%x: %w", hash[:8], err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("prepare: cached module %s: %w", path, err)
	}
	if [32]byte(h.Sum(nil)) != hash {
		return fmt.Errorf("prepare: cached module %s: %w: its hash does not match its name", path, ErrCorrupt)
	}
	return nil
}

// touch records a cached file as used now: its modification time, which
// Entries reports. (Access times are not kept on every filesystem.) A
// cache it cannot write to is used all the same.
func touch(path string) {
	os.Chtimes(path, time.Time{}, time.Now())
}

// Entry is a prepared module in the cache, as Entries lists it.
type Entry struct {
	// Hash is the prepared module's.
	Hash [32]byte
	// Bytes is the space the module takes in the cache, its start
	// module's included.
	Bytes int64
	// Used is when the module was last stored or loaded.
	Used time.Time
}

// Bytes is the space the prepared module hash takes in the cache, its
// start module's included: what Load allocates for it. It is 0 if the
// cache does not have it.
func (c Cache) Bytes(hash [32]byte) int64 {
	st, err := os.Stat(c.modulePath(hash))
	if err != nil {
		return 0
	}
	n := st.Size()
	if sh, ok := readIndex(c.startPath(hash)); ok {
		if st, err := os.Stat(c.modulePath(sh)); err == nil {
			n += st.Size()
		}
	}
	return n
}

// Entries lists the prepared modules in the cache. A start module is
// counted with the prepared module it is the start module of, unless
// that one is gone.
func (c Cache) Entries() ([]Entry, error) {
	ents, err := os.ReadDir(c.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("prepare: cache: %w", err)
	}
	byHash := map[[32]byte]*Entry{}
	var order [][32]byte
	for _, e := range ents {
		hash, ok := moduleFileHash(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		byHash[hash] = &Entry{Hash: hash, Bytes: info.Size(), Used: info.ModTime()}
		order = append(order, hash)
	}
	// Fold each start module into its prepared module.
	starts, _ := os.ReadDir(filepath.Join(c.Dir, "start"))
	for _, s := range starts {
		parent, ok := parseHex(s.Name())
		if !ok {
			continue
		}
		start, ok := readIndex(filepath.Join(c.Dir, "start", s.Name()))
		p, sp := byHash[parent], byHash[start]
		if !ok || p == nil || sp == nil || start == parent {
			continue
		}
		p.Bytes += sp.Bytes
		delete(byHash, start)
	}
	var out []Entry
	for _, h := range order {
		if e := byHash[h]; e != nil {
			out = append(out, *e)
		}
	}
	return out, nil
}

// Remove removes the prepared module hash from the cache, with its start
// module and the index entries that lead to it. A module that is not
// there is no error. Index entries are removed first: a concurrent
// Prepare finds the module whole or prepares it again.
func (c Cache) Remove(hash [32]byte) error {
	var errs []error
	rm := func(path string) {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	srcDir := filepath.Join(c.Dir, "source")
	sources, _ := os.ReadDir(srcDir)
	for _, e := range sources {
		if h, ok := readIndex(filepath.Join(srcDir, e.Name())); ok && h == hash {
			rm(filepath.Join(srcDir, e.Name()))
		}
	}
	startIndex := c.startPath(hash)
	start, hasStart := readIndex(startIndex)
	rm(startIndex)
	if hasStart && start != hash {
		rm(c.modulePath(start))
	}
	rm(c.modulePath(hash))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prepare: cache: remove module sha256:%x: %w", hash[:8], err)
	}
	return nil
}

// moduleFileHash returns the hash a module file of the cache is named by.
func moduleFileHash(name string) ([32]byte, bool) {
	stem, ok := strings.CutSuffix(name, ".wasm")
	if !ok {
		return [32]byte{}, false
	}
	return parseHex(stem)
}

// parseHex parses a hash written in hex.
func parseHex(s string) (hash [32]byte, ok bool) {
	if len(s) != 2*len(hash) {
		return hash, false
	}
	_, err := hex.Decode(hash[:], []byte(s))
	return hash, err == nil
}

// modulePath returns the path of the prepared module with the given hash.
func (c Cache) modulePath(hash [32]byte) string {
	return filepath.Join(c.Dir, hex.EncodeToString(hash[:])+".wasm")
}

// startPath returns the path of the index entry for the start module of
// a prepared module.
func (c Cache) startPath(hash [32]byte) string {
	return filepath.Join(c.Dir, "start", hex.EncodeToString(hash[:]))
}

// sourcePath returns the path of the index entry for a source module.
func (c Cache) sourcePath(src [32]byte) string {
	return filepath.Join(c.Dir, "source", hex.EncodeToString(src[:])+"-v"+PreparerVersion)
}
