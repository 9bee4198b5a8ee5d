//go:build race

// Package race tells whether the program is built with the race detector
// (go build -race), for the tests that must do something else under it.
package race

// Enabled is true in a program built with the race detector.
const Enabled = true
