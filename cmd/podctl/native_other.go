//go:build !(linux && cgo)

package main

// nativeEntry: this build has no native layer, so no hidden entry of its.
func nativeEntry(string) {}
