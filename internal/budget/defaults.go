package budget

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
)

// The defaults of a dock's budgets, and how they derive from the machine.
const (
	// MinMemory is the least DefaultMemory returns: room for a few small
	// vessels at once on the smallest machine.
	MinMemory = 256 << 20
	// FallbackMemory is DefaultMemory's answer where the machine's
	// memory cannot be read (no /proc/meminfo).
	FallbackMemory = 1 << 30
	// MinDisk is the least DefaultDisk returns.
	MinDisk = 1 << 30
	// FallbackDisk is DefaultDisk's answer where the free space cannot be
	// read.
	FallbackDisk = 8 << 30
)

// DefaultMemory is the memory budget of a dock not told otherwise: a
// quarter of the machine's memory (MemTotal, or the dock's cgroup's
// memory limit if that is lower), at least MinMemory. A
// quarter, because a dock shares its machine with the pods it receives,
// whose memory is not the dock's to spend, and with the page cache their
// files need; and because what a receive allocates is garbage once it
// ends, which Go's collector lets grow to as much again as the live heap
// before it runs. The rest of the machine stays with the pods.
func DefaultMemory() int64 {
	total, err := memTotal()
	if err != nil || total <= 0 {
		return FallbackMemory
	}
	return max(total/4, MinMemory)
}

// DefaultDisk is the disk budget of a dock not told otherwise, whose
// staging and module cache live under dir: half the space available to
// it there when the dock starts, at least MinDisk. Half, because the
// pods a dock receives keep growing their own files on the same
// filesystem once they run.
func DefaultDisk(dir string) int64 {
	free, err := available(dir)
	if err != nil || free <= 0 {
		return FallbackDisk
	}
	return max(free/2, MinDisk)
}

// parseMemTotal returns the MemTotal line of /proc/meminfo, in bytes.
func parseMemTotal(meminfo []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == "MemTotal:" {
			kib, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil || kib <= 0 || (len(f) > 2 && string(f[2]) != "kB") {
				return 0, fmt.Errorf("meminfo: bad MemTotal line %q", sc.Text())
			}
			return kib << 10, nil
		}
	}
	return 0, fmt.Errorf("meminfo: no MemTotal line")
}
