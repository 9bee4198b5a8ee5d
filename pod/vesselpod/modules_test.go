package vesselpod

import (
	"crypto/sha256"
	"os"
	"testing"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/wasm/snapshot"
)

// module returns distinct bytes the cache takes for a prepared module of
// about size bytes.
func module(name string, size int) []byte {
	return append(append([]byte("\x00asm\x01\x00\x00\x00"), name...), make([]byte, size)...)
}

// cacheModule stores a module in s's cache, last used at used, and
// returns its hash.
func cacheModule(t *testing.T, s Store, b []byte, used time.Time) [32]byte {
	t.Helper()
	p, err := s.cache().Store(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(s.cache().Dir+"/"+hashHex(p.Hash)+".wasm", used, used); err != nil {
		t.Fatal(err)
	}
	return p.Hash
}

// usePod records a vessel pod of s that uses the module hash.
func usePod(t *testing.T, s Store, name string, hash [32]byte, state State) {
	t.Helper()
	_, unlock, err := s.makePodDir(name)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := s.save(&Manifest{Kind: Kind, Spec: Spec{Name: name}, State: state, ModuleHash: hashHex(hash)}); err != nil {
		t.Fatal(err)
	}
}

// cached reports which of hashes s's cache holds, without recording
// them as used (as HasModule would).
func cached(s Store, hashes ...[32]byte) []bool {
	var out []bool
	for _, h := range hashes {
		_, err := os.Stat(s.cache().Dir + "/" + hashHex(h) + ".wasm")
		out = append(out, err == nil)
	}
	return out
}

// TestModuleCacheEvictsLeastRecentlyUsed checks the eviction order (least
// recently used first, as few as make room) and that no module a vessel
// pod uses, running or checkpointed, is ever evicted, even when it is the
// oldest.
func TestModuleCacheEvictsLeastRecentlyUsed(t *testing.T) {
	s := Store{Root: t.TempDir()}
	now := time.Now()
	const kib = 1 << 10
	oldest := cacheModule(t, s, module("oldest", 100*kib), now.Add(-5*time.Hour))
	inUse := cacheModule(t, s, module("in-use", 100*kib), now.Add(-4*time.Hour))
	checkpointed := cacheModule(t, s, module("checkpointed", 100*kib), now.Add(-3*time.Hour))
	older := cacheModule(t, s, module("older", 100*kib), now.Add(-2*time.Hour))
	recent := cacheModule(t, s, module("recent", 100*kib), now.Add(-time.Hour))
	usePod(t, s, "web", inUse, StateCreated)
	usePod(t, s, "batch", checkpointed, StateCheckpointed)

	// Room for 560 KiB: 90 KiB over after the incoming 150 KiB, so the
	// oldest module not in use goes, and nothing else.
	c := NewModuleCache(s, 560*kib)
	incoming := module("incoming", 150*kib)
	h, err := c.Receiving(&snapshot.Snapshot{ModuleHash: sha256.Sum256(incoming), Module: incoming})
	if err != nil {
		t.Fatal(err)
	}
	if got := cached(s, oldest, inUse, checkpointed, older, recent); got[0] || !got[1] || !got[2] || !got[3] || !got[4] {
		t.Fatalf("after making room for 150 KiB: oldest, in use, checkpointed, older, recent cached = %v, want only the oldest gone", got)
	}
	if _, err := s.cache().Store(incoming); err != nil {
		t.Fatal(err)
	}
	if err := h.Done(true); err != nil {
		t.Fatal(err)
	}

	// Down to 200 KiB: every module not in use goes, the most recent (the
	// one just received) last, and the modules in use stay although the
	// cache is still over its size.
	c = NewModuleCache(s, 200*kib)
	if err := c.Trim(); err != nil {
		t.Fatal(err)
	}
	if got := cached(s, inUse, checkpointed, older, recent, sha256.Sum256(incoming)); !got[0] || !got[1] || got[2] || got[3] || got[4] {
		t.Fatalf("after trimming to 200 KiB: in use, checkpointed, older, recent, incoming cached = %v, want only the two in use", got)
	}

	// A module that does not fit beside those in use is refused.
	another := module("another", 10*kib)
	if _, err := c.Receiving(&snapshot.Snapshot{ModuleHash: sha256.Sum256(another), Module: another}); !errdefs.Is(err, errdefs.Busy) {
		t.Fatalf("a module with no room beside modules in use: %v (kind %d), want Busy", err, errdefs.KindOf(err))
	}
	huge := module("huge", 300*kib)
	if _, err := c.Receiving(&snapshot.Snapshot{ModuleHash: sha256.Sum256(huge), Module: huge}); !errdefs.Is(err, errdefs.Unsupported) {
		t.Fatalf("a module larger than the cache: %v (kind %d), want Unsupported", err, errdefs.KindOf(err))
	}
	if got := cached(s, inUse, checkpointed); !got[0] || !got[1] {
		t.Fatal("a refused receive evicted a module in use")
	}
}

// TestModuleCacheHolds checks that a module a receive in progress holds
// is not evicted, and that room made for one receive's module is not
// given to another.
func TestModuleCacheHolds(t *testing.T) {
	s := Store{Root: t.TempDir()}
	const kib = 1 << 10
	held := cacheModule(t, s, module("held", 100*kib), time.Now().Add(-time.Hour))
	c := NewModuleCache(s, 250*kib)
	h, err := c.Receiving(&snapshot.Snapshot{ModuleHash: held}) // without its module: the cache's is used
	if err != nil {
		t.Fatal(err)
	}
	a := module("a", 100*kib)
	ha, err := c.Receiving(&snapshot.Snapshot{ModuleHash: sha256.Sum256(a), Module: a})
	if err != nil {
		t.Fatalf("room for a beside the held module: %v", err)
	}
	if !s.HasModule(held) {
		t.Fatal("making room evicted a held module")
	}
	b := module("b", 100*kib)
	if _, err := c.Receiving(&snapshot.Snapshot{ModuleHash: sha256.Sum256(b), Module: b}); !errdefs.Is(err, errdefs.Busy) {
		t.Fatalf("a second module in the room made for the first: %v", err)
	}
	ha.Done(false)
	h.Done(true)
	if _, err := c.Receiving(&snapshot.Snapshot{ModuleHash: sha256.Sum256(b), Module: b}); err != nil {
		t.Fatalf("once the holds are done: %v", err)
	}
}

// TestModuleCacheFailedReceive checks that a failed receive leaves no
// module it added, unless a vessel pod uses it or another receive holds
// it, and never takes a module that was there before.
func TestModuleCacheFailedReceive(t *testing.T) {
	s := Store{Root: t.TempDir()}
	c := NewModuleCache(s, 0)
	receive := func(m []byte, ok bool) {
		t.Helper()
		h, err := c.Receiving(&snapshot.Snapshot{ModuleHash: sha256.Sum256(m), Module: m})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.cache().Store(m); err != nil {
			t.Fatal(err)
		}
		if err := h.Done(ok); err != nil {
			t.Fatal(err)
		}
	}
	fresh := module("fresh", 1000)
	receive(fresh, false)
	if s.HasModule(sha256.Sum256(fresh)) {
		t.Fatal("a failed receive left the module it added")
	}

	before := module("before", 1000)
	cacheModule(t, s, before, time.Now())
	receive(before, false)
	if !s.HasModule(sha256.Sum256(before)) {
		t.Fatal("a failed receive took a module that was there before it")
	}

	used := module("used", 1000)
	usePod(t, s, "web", sha256.Sum256(used), StateCreated)
	receive(used, false)
	if !s.HasModule(sha256.Sum256(used)) {
		t.Fatal("a failed receive took a module a vessel pod uses")
	}

	// Two receives of one new module: the one that fails leaves it to
	// the other.
	shared := module("shared", 1000)
	snap := &snapshot.Snapshot{ModuleHash: sha256.Sum256(shared), Module: shared}
	h1, err := c.Receiving(snap)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := c.Receiving(snap)
	if err != nil {
		t.Fatal(err)
	}
	s.cache().Store(shared)
	h1.Done(false)
	if !s.HasModule(snap.ModuleHash) {
		t.Fatal("a failed receive took a module another receive holds")
	}
	h2.Done(true)
	if !s.HasModule(snap.ModuleHash) {
		t.Fatal("the module of a successful receive is gone")
	}
}
