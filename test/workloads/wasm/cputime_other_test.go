//go:build !linux

package wasmworkloads_test

func threadCPU() float64 { return 0 }
