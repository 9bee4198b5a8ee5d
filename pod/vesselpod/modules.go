package vesselpod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/names"
	"github.com/podctl/podctl/internal/statedir"
	"github.com/podctl/podctl/wasm/prepare"
	"github.com/podctl/podctl/wasm/snapshot"
)

// ModuleCache keeps a store's module cache within a size for a dock,
// which stores there the modules its peers send: without it, every
// module ever received stays for good, a failed receive's included.
//
// It evicts the modules least recently used (stored, loaded or asked
// for: prepare.Cache.Entries) first, and never one that a vessel pod of
// the store uses, whatever its state (its manifest names the module: a
// running vessel's supervisor reads it again to stop with its module, a
// checkpointed one to resume), nor one a receive in progress holds.
// Vessels housed in native pods keep a copy of their module in their own
// pod and do not need the store's.
//
// The size bounds what receives add: a receive whose module does not fit
// once every module it may evict is gone is refused. Modules that
// `podctl create` prepares on the same host go to the same cache and
// count, but are not refused; the next receive, or the dock's start
// (Trim), evicts down to the size again.
type ModuleCache struct {
	store Store
	max   int64

	mu      sync.Mutex
	holds   map[[32]byte]int // receives in progress, by module
	pending int64            // bytes of modules receives are about to store
}

// NewModuleCache returns the keeper of s's module cache, which it holds
// to max bytes (0: no limit, but failed receives still leave nothing).
// One dock has one: it shares the receives in progress between them.
func NewModuleCache(s Store, max int64) *ModuleCache {
	return &ModuleCache{store: s, max: max, holds: map[[32]byte]int{}}
}

// Max is the most bytes the cache keeps (0: no limit, or no keeper).
func (c *ModuleCache) Max() int64 {
	if c == nil {
		return 0
	}
	return c.max
}

// ModuleHold is a receive's hold on the module of the snapshot it
// receives, from before the module is stored to the end of the receive.
type ModuleHold struct {
	c     *ModuleCache
	hash  [32]byte
	added bool  // the snapshot carries a module the cache lacked
	room  int64 // bytes of c.pending this hold made room for
	done  bool
}

// Receiving holds the module of snap, which is about to be received
// (Store.Receive, housed.Receive): until Done, no eviction takes it. If
// snap carries a module the cache lacks, Receiving first makes room for
// it, evicting modules least recently used; if even that cannot make
// room, it fails with an errdefs.Busy error.
func (c *ModuleCache) Receiving(snap *snapshot.Snapshot) (*ModuleHold, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := &ModuleHold{c: c, hash: snap.ModuleHash}
	if snap.Module != nil && !c.store.HasModule(snap.ModuleHash) {
		h.added = true
		h.room = int64(len(snap.Module))
		if c.max > 0 {
			if err := c.makeRoom(h.room, false); err != nil {
				return nil, err
			}
		}
		c.pending += h.room
	}
	c.holds[h.hash]++
	return h, nil
}

// Done ends the hold. After a failed receive (received false), a module
// the receive added is removed again, unless a vessel pod of the store
// uses it or another receive holds it. Done can be called more than once.
func (h *ModuleHold) Done(received bool) error {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.done {
		return nil
	}
	h.done = true
	c.pending -= h.room
	if c.holds[h.hash]--; c.holds[h.hash] == 0 {
		delete(c.holds, h.hash)
	}
	if received || !h.added || c.holds[h.hash] > 0 {
		return nil
	}
	used, err := c.inUse()
	if err != nil {
		return fmt.Errorf("vessel module cache: %w", err)
	}
	if used[h.hash] {
		return nil
	}
	return c.store.cache().Remove(h.hash)
}

// Trim evicts modules least recently used until the cache holds at most
// its size, or only modules that are used or held remain.
func (c *ModuleCache) Trim() error {
	if c.max <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.makeRoom(0, true)
}

// makeRoom evicts modules least recently used, neither used nor held,
// until the cache has room for n more bytes besides those receives are
// about to store. If it cannot, it fails with an errdefs.Busy error and
// evicts nothing, unless partial: then it evicts all it can. c.mu is
// held.
func (c *ModuleCache) makeRoom(n int64, partial bool) error {
	if n > c.max {
		return errdefs.New(errdefs.Unsupported, "its module of %d MiB exceeds the dock's module cache of %d MiB", (n+1<<20-1)>>20, c.max>>20)
	}
	ents, err := c.store.cache().Entries()
	if err != nil {
		return fmt.Errorf("vessel module cache: %w", err)
	}
	total := c.pending + n
	for _, e := range ents {
		total += e.Bytes
	}
	if total <= c.max {
		return nil
	}
	used, err := c.inUse()
	if err != nil {
		return fmt.Errorf("vessel module cache: %w", err)
	}
	slices.SortStableFunc(ents, func(a, b prepare.Entry) int { return a.Used.Compare(b.Used) })
	var evict []prepare.Entry
	over := total - c.max
	for _, e := range ents {
		if over <= 0 {
			break
		}
		if used[e.Hash] || c.holds[e.Hash] > 0 {
			continue
		}
		evict = append(evict, e)
		over -= e.Bytes
	}
	if over > 0 && !partial {
		return errdefs.New(errdefs.Busy, "dock busy: its module cache of %d MiB holds modules in use, with no room for %d MiB more", c.max>>20, (n+1<<20-1)>>20)
	}
	var errs []error
	for _, e := range evict {
		errs = append(errs, c.store.cache().Remove(e.Hash))
	}
	return errors.Join(errs...)
}

// inUse returns the modules the store's vessel pods use, whatever their
// state: those their manifests name. A manifest that cannot be read, of
// a pod being made or removed, names none.
func (c *ModuleCache) inUse() (map[[32]byte]bool, error) {
	ents, err := os.ReadDir(c.store.dir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	used := map[[32]byte]bool{}
	for _, e := range ents {
		if !e.IsDir() || names.Validate(e.Name()) != nil {
			continue
		}
		var m Manifest
		if err := statedir.ReadJSON(filepath.Join(c.store.podDir(e.Name()), manifestFile), &m); err != nil {
			continue
		}
		if h, err := parseHash(m.ModuleHash); err == nil {
			used[h] = true
		}
	}
	return used, nil
}
