package wasi

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// The WASI clock identifiers.
const (
	clockRealtime         = 0
	clockMonotonic        = 1
	clockProcessCputimeID = 2
	clockThreadCputimeID  = 3
)

// readClock returns clock id's time in nanoseconds: the host's for the
// realtime clock, the System's virtual monotonic clock for the others
// (the CPU-time clocks included, which a move would otherwise reset).
func (s *System) readClock(id uint32) (uint64, errno) {
	switch id {
	case clockRealtime:
		return uint64(time.Now().UnixNano()), errnoSuccess
	case clockMonotonic, clockProcessCputimeID, clockThreadCputimeID:
		return s.clock.now(), errnoSuccess
	}
	return 0, errnoInval
}

// clockResGet is clock_res_get: a microsecond for the realtime clock, as
// wazero, a nanosecond for the others.
func (s *System) clockResGet(_ context.Context, mod api.Module, p []uint64) errno {
	var res uint64
	switch uint32(p[0]) {
	case clockRealtime:
		res = uint64(time.Microsecond)
	case clockMonotonic, clockProcessCputimeID, clockThreadCputimeID:
		res = 1
	default:
		return errnoInval
	}
	if !mod.Memory().WriteUint64Le(uint32(p[1]), res) {
		return errnoFault
	}
	return errnoSuccess
}

// clockTimeGet is clock_time_get.
func (s *System) clockTimeGet(_ context.Context, mod api.Module, p []uint64) errno {
	t, e := s.readClock(uint32(p[0]))
	if e != 0 {
		return e
	}
	if !mod.Memory().WriteUint64Le(uint32(p[2]), t) {
		return errnoFault
	}
	return errnoSuccess
}

// The WASI event types, the tags of a subscription.
const (
	eventClock   = 0
	eventFdRead  = 1
	eventFdWrite = 2
)

// subscriptionClockAbstime is the only subclockflag.
const subscriptionClockAbstime = 1

// The sizes of a subscription and of an event.
const (
	subscriptionSize = 48
	eventSize        = 32
)

// pollEvent is an event poll_oneoff reports, or a clock subscription that
// may become one.
type pollEvent struct {
	userdata  [8]byte
	errno     errno
	eventType uint8
	// wait is how long a clock subscription waits from the call.
	wait time.Duration
}

// pollOneoff is poll_oneoff. Descriptor subscriptions are ready at once
// (reads from the standard input then block in fd_read); clock ones are
// slept out, relative or absolute, on the realtime clock or the virtual
// monotonic one, through the Waiter if there is one. A sleep ends early
// if ctx is done: the module is then closed with wazero's exit code for
// that, as wazero's WithCloseOnContextDone would.
func (s *System) pollOneoff(ctx context.Context, mod api.Module, p []uint64) errno {
	if s.waiter != nil {
		s.waiter.Enter(ctx, mod)
	}
	in, out, n, result := uint32(p[0]), uint32(p[1]), uint32(p[2]), uint32(p[3])
	if n == 0 {
		return errnoInval
	}
	mem := mod.Memory()
	if uint64(n)*subscriptionSize > math.MaxUint32 {
		return errnoFault
	}
	inBuf, ok := mem.Read(in, n*subscriptionSize)
	if !ok {
		return errnoFault
	}
	outBuf, ok := mem.Read(out, n*eventSize)
	if !ok {
		return errnoFault
	}
	if _, ok := mem.Read(result, 4); !ok {
		return errnoFault
	}

	var ready, clocks []pollEvent
	s.mu.Lock()
	mono, wall := s.clock.now(), time.Now()
	for i := uint32(0); i < n; i++ {
		sub := inBuf[i*subscriptionSize : (i+1)*subscriptionSize]
		ev := pollEvent{userdata: [8]byte(sub[0:8]), eventType: sub[8]}
		switch sub[8] {
		case eventClock:
			id := binary.LittleEndian.Uint32(sub[16:])
			timeout := binary.LittleEndian.Uint64(sub[24:])
			flags := binary.LittleEndian.Uint16(sub[40:])
			if flags&^subscriptionClockAbstime != 0 {
				ev.errno = errnoInval
				ready = append(ready, ev)
				continue
			}
			var now uint64
			switch id {
			case clockRealtime:
				now = uint64(wall.UnixNano())
			case clockMonotonic, clockProcessCputimeID, clockThreadCputimeID:
				now = mono
			default:
				ev.errno = errnoInval
				ready = append(ready, ev)
				continue
			}
			if flags&subscriptionClockAbstime != 0 {
				if timeout < now {
					timeout = 0
				} else {
					timeout -= now
				}
			}
			ev.wait = time.Duration(min(timeout, math.MaxInt64))
			clocks = append(clocks, ev)
		case eventFdRead, eventFdWrite:
			if _, e := s.lookup(binary.LittleEndian.Uint32(sub[16:])); e != 0 {
				ev.errno = e
			}
			ready = append(ready, ev)
		default:
			s.mu.Unlock()
			return errnoInval
		}
	}
	s.mu.Unlock()

	// Sleep until the first clock if nothing is ready yet; then every
	// clock due by then fires.
	var due time.Duration
	if len(ready) == 0 {
		due = time.Duration(math.MaxInt64)
		for _, c := range clocks {
			due = min(due, c.wait)
		}
		if s.waiter == nil {
			sleep(ctx, mod, due)
		} else if s.waiter.Wait(ctx, mod, due) {
			return errnoSuccess // unwinding
		} else {
			sleep(ctx, mod, 0) // ends the guest if ctx is done
		}
	}
	for _, c := range clocks {
		if c.wait <= due {
			ready = append(ready, c)
		}
	}

	clear(outBuf)
	for i, ev := range ready {
		b := outBuf[i*eventSize:]
		copy(b[0:8], ev.userdata[:])
		binary.LittleEndian.PutUint16(b[8:], uint16(ev.errno))
		b[10] = ev.eventType
	}
	mem.WriteUint32Le(result, uint32(len(ready)))
	return errnoSuccess
}

// sleep waits for d, or until ctx is done: then it closes mod with the
// exit code wazero uses for that, and ends the call with the exit error.
func sleep(ctx context.Context, mod api.Module, d time.Duration) {
	if d > 0 && ctx.Err() == nil {
		t := time.NewTimer(d)
		select {
		case <-t.C:
			return
		case <-ctx.Done():
			t.Stop()
		}
	}
	if err := ctx.Err(); err != nil {
		code := sys.ExitCodeContextCanceled
		if errors.Is(err, context.DeadlineExceeded) {
			code = sys.ExitCodeDeadlineExceeded
		}
		_ = mod.CloseWithExitCode(ctx, code)
		panic(sys.NewExitError(code))
	}
}
