package budget

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// memTotal is the memory the dock's machine has (/proc/meminfo's
// MemTotal), or its cgroup's memory limit if that is lower: a dock run
// with systemd's MemoryMax=, say.
func memTotal() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	total, err := parseMemTotal(b)
	if err != nil {
		return 0, err
	}
	if cg, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		if limit := cgroupMemoryLimit("/sys/fs/cgroup", cg); limit > 0 {
			total = min(total, limit)
		}
	}
	return total, nil
}

// cgroupMemoryLimit returns the memory limit of the cgroup that
// procCgroup (the contents of /proc/self/cgroup) names, under the
// cgroup filesystem mounted at root: cgroup v2's memory.max, or v1's
// memory.limit_in_bytes. It returns 0 if there is none or it cannot be
// read.
func cgroupMemoryLimit(root string, procCgroup []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(procCgroup))
	var file string
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "":
			if file == "" {
				file = filepath.Join(root, f[2], "memory.max")
			}
		case strings.Contains(","+f[1]+",", ",memory,"):
			file = filepath.Join(root, "memory", f[2], "memory.limit_in_bytes")
		}
	}
	if file == "" {
		return 0
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 {
		return 0 // "max"
	}
	return n
}
