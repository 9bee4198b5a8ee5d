//go:build !(linux && cgo)

package main

// nativeBuild says this build has native pods: it has not.
const nativeBuild = false

// nativeEntry: this build has no native layer, so no hidden entry of its.
func nativeEntry(string) {}
