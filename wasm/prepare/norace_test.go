//go:build !race

package prepare

// raceEnabled is true when the race detector is; see race_test.go.
const raceEnabled = false
