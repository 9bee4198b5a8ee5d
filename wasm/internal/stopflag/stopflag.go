// Package stopflag is the host's side of the flag of a prepared module
// (prepare.FlagExport): the mutable i32 global a host raises, from a
// goroutine of its own, to have the guest, running in another, call its
// poll function at its next poll point, and that the poll function
// lowers.
//
// # Races
//
// The host reads and writes the flag from two goroutines: the one that
// requests a stop raises it, the guest's lowers it in the poll function.
// A Flag orders those accesses with a mutex. Without it they are a data
// race, which the race detector reports, and a real one: a host that
// stores its request and then raises the flag, while the poll function
// lowers the flag and then loads the request, as package vessel does,
// needs both sequences to be sequentially consistent, or the poll
// function can miss the request while its lowering lands after the
// raise (a store buffer delays a plain store past a later load), and the
// guest runs on with a request pending and the flag low.
//
// The guest reads the flag too, at every poll point, while the host may
// be writing it, and no host can synchronize with that read:
//
//   - Under wazero's compiler, the read is a load in the compiled code,
//     which is no Go code: the race detector does not see it. It cannot
//     tear: the flag is 0 or 1, only its low byte ever changes, and the
//     guest reads one or the other, anew at every poll point.
//   - Under wazero's interpreter, the read is Go code, the interpreter's
//     global.get, which loads the global's value without
//     synchronization. Raising the flag while an interpreted guest runs
//     is therefore a data race inside wazero. The memory model makes it
//     benign (a racy read of a word observes a value some write wrote,
//     never a torn one, and the interpreter loads the value anew at every
//     poll point), but the race detector reports it, and nothing outside
//     wazero can prevent that: wazero has no API that writes a global
//     atomically or runs host code in the guest's goroutine while the
//     guest computes. Tests built with the race detector therefore do not
//     raise the flag of an interpreted guest that may be running; without
//     it, they do.
package stopflag

import (
	"sync"

	"github.com/tetratelabs/wazero/api"
)

// Flag is the flag of an instance of a prepared module. Its methods may
// be called from any goroutine, the guest's included.
type Flag struct {
	mu sync.Mutex
	g  api.MutableGlobal
}

// New returns the Flag of the flag global g, which must be the one
// instance's export prepare.FlagExport. Every access to the global by the
// host must go through the one Flag.
func New(g api.MutableGlobal) *Flag { return &Flag{g: g} }

// Raise raises the flag: the guest calls its poll function at its next
// poll point. What the caller stored before it raises the flag is seen by
// whoever lowers it after.
func (f *Flag) Raise() {
	f.mu.Lock()
	f.g.Set(1)
	f.mu.Unlock()
}

// Lower lowers the flag and reports whether it was raised. A Raise either
// comes before it, and the caller then sees after Lower what was stored
// before that Raise, or after it, and leaves the flag raised: a poll
// function that lowers the flag and then looks for requests misses none.
func (f *Flag) Lower() (raised bool) {
	f.mu.Lock()
	raised = f.g.Get() != 0
	f.g.Set(0)
	f.mu.Unlock()
	return raised
}
