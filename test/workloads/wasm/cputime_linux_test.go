package wasmworkloads_test

import "golang.org/x/sys/unix"

// threadCPU is the CPU time the calling thread has used, which the load
// on the machine changes less than the wall-clock time.
func threadCPU() float64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_THREAD, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
