// Package budget shares a bounded amount of a resource (a dock's memory,
// its disk space) between the requests that use it at once, so that no
// combination of requests can take more than the whole.
//
// A Budget is a weighted semaphore of bytes. Each request takes a Lease
// of it, reserves from the lease what it is about to allocate or write,
// before doing so, and releases the lease, all at once, when it ends. A
// reservation that cannot be had within the budget's wait is refused
// with an errdefs.Busy error ("dock busy: memory budget of 512 MiB in
// use"); one larger than the whole budget is refused at once, with an
// errdefs.Unsupported error, since no wait would help.
package budget

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/podctl/podctl/internal/errdefs"
)

// DefaultWait is how long a reservation waits for others to release
// what it needs before it is refused: long enough for a small receive to
// finish, short enough that a refused peer hears of it before its own
// timeouts (and that a stalled request holds its HTTP/2 stream window
// only that long).
const DefaultWait = 2 * time.Second

// granule is the least a lease takes from its budget at a time: decoders
// reserve many small amounts (a string, a list), which the lease then
// serves from what it holds rather than the budget's lock.
const granule = 256 << 10

// Budget is a bounded amount of a resource, in bytes, shared by
// concurrent leases. A nil *Budget is unlimited: its leases reserve
// anything at once.
type Budget struct {
	what  string // "memory", "disk": for messages
	flag  string // the option that sets it, for messages
	size  int64
	wait  time.Duration
	sem   *semaphore.Weighted
	inUse atomic.Int64
}

// New returns a budget of size bytes of what ("memory", "disk"), set by
// the option flag (for messages; "" if none). A reservation waits up to
// wait (0: DefaultWait) for others to release what it needs.
func New(what, flag string, size int64, wait time.Duration) *Budget {
	if wait <= 0 {
		wait = DefaultWait
	}
	return &Budget{what: what, flag: flag, size: size, wait: wait, sem: semaphore.NewWeighted(size)}
}

// Size is the budget's size in bytes, 0 for an unlimited (nil) budget.
func (b *Budget) Size() int64 {
	if b == nil {
		return 0
	}
	return b.size
}

// InUse is how many bytes the budget's leases hold now.
func (b *Budget) InUse() int64 {
	if b == nil {
		return 0
	}
	return b.inUse.Load()
}

// String describes the budget, as "memory budget of 512 MiB".
func (b *Budget) String() string {
	if b == nil {
		return "no budget"
	}
	return fmt.Sprintf("%s budget of %s", b.what, mib(b.size))
}

// mib formats a byte count in MiB, rounded down, or in bytes below 1 MiB.
func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// Lease returns an empty lease of b for one request. Its reservations
// wait no longer than ctx lasts. The caller must Release it.
func (b *Budget) Lease(ctx context.Context) *Lease {
	return &Lease{b: b, ctx: ctx}
}

// Lease is one request's share of a budget: what it has reserved so far,
// all of which Release gives back. Its methods may be called from
// several goroutines.
type Lease struct {
	b *Budget
	// ctx is the request's: a lease lives exactly as long as the request
	// it was taken for, and its reservations are made from inside
	// decoders that take no context of their own.
	ctx context.Context

	mu       sync.Mutex
	held     int64 // taken from the budget
	reserved int64 // reserved by the request, at most held
	err      error // the first refusal
	released bool
}

// Reserve reserves n more bytes for the lease's request, waiting up to
// the budget's wait for other leases to release them. It fails with an
// errdefs.Busy error if they are not released in time, with an
// errdefs.Unsupported error if the lease would hold more than the whole
// budget, and with the context's error if the request ends first. Once a
// reservation has been refused, every later one is refused too. A nil
// lease, or a lease of a nil budget, reserves anything.
func (l *Lease) Reserve(n int64) error {
	if l == nil || n <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if l.released {
		return errors.New("budget: reserve on a released lease")
	}
	if l.b == nil {
		l.reserved += n
		return nil
	}
	if l.reserved+n <= l.held {
		l.reserved += n
		return nil
	}
	b := l.b
	need := l.reserved + n - l.held
	if l.reserved+n > b.size {
		l.err = errdefs.New(errdefs.Unsupported, "the receive needs more than the dock's whole %s%s", b, b.flagHint())
		return l.err
	}
	take := need
	if g := min(max(need, granule), b.size-l.held); g > need && b.sem.TryAcquire(g) {
		take = 0
		l.grant(g)
	}
	if take > 0 {
		ctx, cancel := context.WithTimeout(l.ctx, b.wait)
		err := b.sem.Acquire(ctx, take)
		cancel()
		switch {
		case err != nil && l.ctx.Err() != nil:
			l.err = fmt.Errorf("waiting for the dock's %s: %w", b, l.ctx.Err())
			return l.err
		case err != nil:
			l.err = errdefs.New(errdefs.Busy, "dock busy: %s in use", b)
			return l.err
		}
		l.grant(take)
	}
	l.reserved += n
	return nil
}

// grant records n bytes taken from the budget.
func (l *Lease) grant(n int64) {
	l.held += n
	l.b.inUse.Add(n)
}

// flagHint names the option that sets the budget, if any.
func (b *Budget) flagHint() string {
	if b.flag == "" {
		return ""
	}
	return " (" + b.flag + ")"
}

// Reserved is how many bytes the lease has reserved so far.
func (l *Lease) Reserved() int64 {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reserved
}

// Limit is the most the lease could ever reserve: its budget's size (0
// for an unlimited lease).
func (l *Lease) Limit() int64 {
	if l == nil {
		return 0
	}
	return l.b.Size()
}

// Err is the refusal of one of the lease's reservations, if any: the
// cause of a request's failure, whatever error the code that reserved
// made of it.
func (l *Lease) Err() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Release gives back everything the lease holds. Further reservations
// fail; a second Release does nothing.
func (l *Lease) Release() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return
	}
	l.released = true
	if l.b != nil && l.held > 0 {
		l.b.inUse.Add(-l.held)
		l.b.sem.Release(l.held)
	}
	l.held, l.reserved = 0, 0
}

// TryTake takes n bytes of b at once, if they are free, for something
// that lives outside any request (a connection's buffers); release gives
// them back. It does not wait. A nil budget takes anything.
func (b *Budget) TryTake(n int64) (release func(), ok bool) {
	if b == nil {
		return func() {}, true
	}
	if !b.sem.TryAcquire(n) {
		return nil, false
	}
	b.inUse.Add(n)
	var once sync.Once
	return func() {
		once.Do(func() {
			b.inUse.Add(-n)
			b.sem.Release(n)
		})
	}, true
}
