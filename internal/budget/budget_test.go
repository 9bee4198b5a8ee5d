package budget

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
)

// TestLeasesShareTheBudget checks that leases together never hold more
// than the budget: a reservation that does not fit waits, and is refused
// as busy once the wait is over, while one that fits succeeds.
func TestLeasesShareTheBudget(t *testing.T) {
	b := New("memory", "--memory-budget", 64<<20, 50*time.Millisecond)
	ctx := t.Context()
	a := b.Lease(ctx)
	defer a.Release()
	if err := a.Reserve(40 << 20); err != nil {
		t.Fatal(err)
	}
	c := b.Lease(ctx)
	defer c.Release()
	start := time.Now()
	err := c.Reserve(30 << 20)
	if !errdefs.Is(err, errdefs.Busy) || err.Error() != "dock busy: memory budget of 64 MiB in use" {
		t.Fatalf("a reservation beyond the budget: %v (kind %d)", err, errdefs.KindOf(err))
	}
	if waited := time.Since(start); waited < 40*time.Millisecond {
		t.Errorf("refused after %v, before the wait was over", waited)
	}
	if err := c.Reserve(1); err == nil || c.Err() == nil {
		t.Error("a lease refused once reserves again")
	}
	d := b.Lease(ctx)
	defer d.Release()
	if err := d.Reserve(24 << 20); err != nil {
		t.Fatalf("a reservation within the budget: %v", err)
	}
	if got := b.InUse(); got > b.Size() || got < 64<<20 {
		t.Errorf("in use %d of %d", got, b.Size())
	}
	a.Release()
	a.Release() // twice is harmless
	if err := b.Lease(ctx).Reserve(40 << 20); err != nil {
		t.Errorf("after a release: %v", err)
	}
}

// TestReserveWaitsForRelease checks that a reservation that does not fit
// at once gets through when another lease is released within the wait.
func TestReserveWaitsForRelease(t *testing.T) {
	b := New("disk", "", 10<<20, 5*time.Second)
	a := b.Lease(t.Context())
	if err := a.Reserve(8 << 20); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(20*time.Millisecond, a.Release)
	c := b.Lease(t.Context())
	defer c.Release()
	if err := c.Reserve(5 << 20); err != nil {
		t.Fatalf("a reservation that fits once another lease is released: %v", err)
	}
}

// TestReserveMoreThanTheBudget checks that a lease asking for more than
// the whole budget is refused at once, as unsupported, naming the option
// that sets the budget.
func TestReserveMoreThanTheBudget(t *testing.T) {
	b := New("disk", "--disk-budget", 10<<20, time.Hour)
	l := b.Lease(t.Context())
	defer l.Release()
	if err := l.Reserve(6 << 20); err != nil {
		t.Fatal(err)
	}
	err := l.Reserve(5 << 20)
	if !errdefs.Is(err, errdefs.Unsupported) || err.Error() != "the receive needs more than the dock's whole disk budget of 10 MiB (--disk-budget)" {
		t.Fatalf("got %v (kind %d)", err, errdefs.KindOf(err))
	}
	if !errors.Is(l.Err(), err) {
		t.Errorf("Err() = %v, want the refusal", l.Err())
	}
}

// TestReserveEndsWithTheRequest checks that a waiting reservation gives
// up when its request ends, saying so rather than "busy".
func TestReserveEndsWithTheRequest(t *testing.T) {
	b := New("memory", "", 1<<20, time.Hour)
	hold := b.Lease(t.Context())
	defer hold.Release()
	if err := hold.Reserve(1 << 20); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(10*time.Millisecond, cancel)
	l := b.Lease(ctx)
	defer l.Release()
	if err := l.Reserve(1); !errors.Is(err, context.Canceled) || errdefs.Is(err, errdefs.Busy) {
		t.Fatalf("got %v", err)
	}
}

// TestConcurrentLeases hammers a budget with small reservations from
// many goroutines and checks that it never hands out more than it has.
func TestConcurrentLeases(t *testing.T) {
	b := New("memory", "", 4<<20, 20*time.Millisecond)
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak := int64(0)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := b.Lease(t.Context())
			defer l.Release()
			for range 200 {
				if l.Reserve(4<<10) != nil {
					return
				}
				mu.Lock()
				peak = max(peak, b.InUse())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if peak > b.Size() {
		t.Fatalf("leases held %d bytes of a budget of %d", peak, b.Size())
	}
	if b.InUse() != 0 {
		t.Fatalf("%d bytes still in use after every lease was released", b.InUse())
	}
}

func TestNilBudget(t *testing.T) {
	var b *Budget
	l := b.Lease(t.Context())
	if err := l.Reserve(1 << 50); err != nil || l.Reserved() != 1<<50 || l.Limit() != 0 {
		t.Fatalf("an unlimited lease: %v, %d", err, l.Reserved())
	}
	l.Release()
	var nl *Lease
	if nl.Reserve(1) != nil || nl.Err() != nil {
		t.Fatal("a nil lease refuses")
	}
	nl.Release()
}

func TestParseMemTotal(t *testing.T) {
	got, err := parseMemTotal([]byte("MemTotal:       24684544 kB\nMemFree:        19049080 kB\n"))
	if err != nil || got != 24684544<<10 {
		t.Fatalf("got %d, %v", got, err)
	}
	for _, bad := range []string{"", "MemFree: 1 kB\n", "MemTotal: x kB\n", "MemTotal: 5 MB\n"} {
		if _, err := parseMemTotal([]byte(bad)); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
}

func TestDefaults(t *testing.T) {
	if m := DefaultMemory(); m < MinMemory {
		t.Errorf("DefaultMemory() = %d, below %d", m, MinMemory)
	}
	d := DefaultDisk(t.TempDir() + "/not/yet/made")
	if d < MinDisk {
		t.Errorf("DefaultDisk() = %d, below %d", d, MinDisk)
	}
	t.Logf("defaults here: memory %d MiB, disk %d MiB", DefaultMemory()>>20, d>>20)
	if s := New("memory", "", 512<<20, 0).String(); !strings.Contains(s, "512 MiB") {
		t.Errorf("String() = %q", s)
	}
}
