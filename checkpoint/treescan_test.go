package checkpoint

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestChangesRules(t *testing.T) {
	start := time.Unix(1000, 0)
	old := start.Add(-time.Second).UnixNano()
	racy := start.Add(-RacyWindow / 2).UnixNano()
	prev := &TreeState{Started: start, Entries: map[string]EntryState{
		".":         {Ino: 1, Mode: 0o40755, Ctime: old},
		"same":      {Ino: 2, Mode: 0o100644, Size: 3, Ctime: old, Mtime: old},
		"racy":      {Ino: 3, Mode: 0o100644, Size: 3, Ctime: racy, Mtime: racy},
		"grown":     {Ino: 4, Mode: 0o100644, Size: 3, Ctime: old, Mtime: old},
		"chmodded":  {Ino: 5, Mode: 0o100644, Size: 3, Ctime: old, Mtime: old},
		"replaced":  {Ino: 6, Mode: 0o100644, Size: 3, Ctime: old, Mtime: old},
		"gone":      {Ino: 7, Mode: 0o100644, Size: 3, Ctime: old, Mtime: old},
		"touched":   {Ino: 8, Mode: 0o100644, Size: 3, Ctime: old, Mtime: old},
		"dir":       {Ino: 9, Mode: 0o40755, Ctime: old},
		"dir/inner": {Ino: 10, Mode: 0o100644, Ctime: old},
	}}
	next := &TreeState{Started: start.Add(time.Second), Entries: map[string]EntryState{
		".":         {Ino: 1, Mode: 0o40755, Ctime: old},
		"same":      prev.Entries["same"],
		"racy":      prev.Entries["racy"], // looks the same: may not be
		"grown":     {Ino: 4, Mode: 0o100644, Size: 4, Ctime: old, Mtime: old},
		"chmodded":  {Ino: 5, Mode: 0o100600, Size: 3, Ctime: old, Mtime: old},
		"replaced":  {Ino: 66, Mode: 0o100644, Size: 3, Ctime: old, Mtime: old},
		"touched":   {Ino: 8, Mode: 0o100644, Size: 3, Ctime: old + 1, Mtime: old},
		"new":       {Ino: 11, Mode: 0o100644, Ctime: old},
		"dir":       prev.Entries["dir"],
		"dir/inner": prev.Entries["dir/inner"],
	}}
	changed, removed := Changes(prev, next)
	if want := []string{"chmodded", "grown", "new", "racy", "replaced", "touched"}; !slices.Equal(changed, want) {
		t.Errorf("changed = %v, want %v", changed, want)
	}
	if want := []string{"gone"}; !slices.Equal(removed, want) {
		t.Errorf("removed = %v, want %v", removed, want)
	}
	all, none := Changes(nil, next)
	if len(all) != len(next.Entries) || len(none) != 0 {
		t.Errorf("Changes(nil, next) = %v, %v; want every path new", all, none)
	}
}

// TestNoWriteMissed writes to a file right after each walk, keeping its
// size (so only ctime and mtime can tell), and checks the next walk
// always reports it: walks and writes that follow each other faster than
// the kernel's timestamp tick are what the racy rule is for (on a kernel
// with multigrain timestamps, 6.13 and later, ctime alone would do).
func TestNoWriteMissed(t *testing.T) {
	seed := rand.Uint64()
	if s := os.Getenv("PODCTL_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (replay with PODCTL_TEST_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	dir := t.TempDir()
	const files = 20
	for i := range files {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), []byte("0000"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	prev, err := ScanTree(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	victim := "0"
	for round := range 300 {
		// Half the time the file of the round before, likely within
		// the same tick of the kernel's clock: the case a comparison
		// of ctime alone misses.
		if rng.IntN(2) == 0 {
			victim = fmt.Sprint(rng.IntN(files))
		}
		if err := os.WriteFile(filepath.Join(dir, victim), fmt.Appendf(nil, "%04d", round%10000), 0o644); err != nil {
			t.Fatal(err)
		}
		next, err := ScanTree(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if changed, _ := Changes(prev, next); !slices.Contains(changed, victim) {
			t.Fatalf("round %d: the write to %s was missed (changed %v)", round, victim, changed)
		}
		prev = next
	}
}

// TestScanTree walks a real tree: a rename and a removal show as the old
// paths removed and the new ones changed, and a tree left alone for
// longer than RacyWindow shows nothing.
func TestScanTree(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, d := range []string{"a", "a/b"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "a/b/f"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "g"), []byte("y"), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(dir, "l"))
	s1, err := ScanTree(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{".", "a", "a/b", "a/b/f", "g", "l"}; !slices.Equal(sortedKeys(s1), want) {
		t.Fatalf("entries %v, want %v", sortedKeys(s1), want)
	}
	if e := s1.Entries["a/b/f"]; e.Size != 1 || e.Mode&0o777 != 0o644 || e.Ino == 0 {
		t.Errorf("a/b/f: %+v", e)
	}
	// Settled: a walk that starts RacyWindow after the last change
	// trusts what it sees.
	deadline := time.Now().Add(10 * time.Second)
	var s2 *TreeState
	for {
		if s2, err = ScanTree(ctx, dir); err != nil {
			t.Fatal(err)
		}
		s3, err := ScanTree(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if changed, removed := Changes(s2, s3); len(changed) == 0 && len(removed) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an untouched tree still shows changes after 10 s")
		}
		time.Sleep(RacyWindow / 5)
	}
	os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "c"))
	os.Remove(filepath.Join(dir, "g"))
	s4, err := ScanTree(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	changed, removed := Changes(s2, s4)
	if want := []string{"a", "a/b", "a/b/f", "g"}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	for _, p := range []string{".", "c", "c/b", "c/b/f"} {
		if !slices.Contains(changed, p) {
			t.Errorf("changed %v lacks %s", changed, p)
		}
	}
}

func sortedKeys(ts *TreeState) []string {
	var ks []string
	for k := range ts.Entries {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// BenchmarkScanTree walks a tree of 10,000 files in 100 directories, as
// a pre-copy round would.
func BenchmarkScanTree(b *testing.B) {
	dir := b.TempDir()
	for d := range 100 {
		sub := filepath.Join(dir, fmt.Sprint(d))
		os.Mkdir(sub, 0o755)
		for f := range 100 {
			os.WriteFile(filepath.Join(sub, fmt.Sprint(f)), []byte("x"), 0o644)
		}
	}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := ScanTree(ctx, dir); err != nil {
			b.Fatal(err)
		}
	}
}
