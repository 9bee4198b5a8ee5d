//go:build race

package prepare

// raceEnabled is true when the race detector is: the tests that set the
// flag global from one goroutine while the poll function clears it from
// another race on it by design (as the guest does, unseen), and skip.
const raceEnabled = true
