// Package cpufeat compares the instruction-set features of two CPUs of the
// same architecture, so that podctl can refuse to move a pod to a host
// whose CPU lacks an instruction the pod's programs may already have
// chosen to use (a program probes CPUID once, at start, and never again).
package cpufeat

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
)

// Features is a set of CPU feature flags as the Linux kernel names them in
// /proc/cpuinfo: sorted, without duplicates. Use New to make one from
// arbitrary strings.
type Features []string

// New returns the set of the given flags.
func New(flags ...string) Features {
	f := slices.Clone(flags)
	slices.Sort(f)
	return Features(slices.Compact(f))
}

// Has reports whether f contains flag. It does not rely on f being sorted,
// so it is safe on a set decoded from another host's message.
func (f Features) Has(flag string) bool { return slices.Contains(f, flag) }

// cpuinfoKey returns the /proc/cpuinfo field listing the CPU features on
// the architecture goarch, or "" if podctl does not know it.
func cpuinfoKey(goarch string) string {
	switch goarch {
	case "amd64", "386":
		return "flags"
	case "arm64":
		return "Features"
	}
	return ""
}

// Known reports whether the features of an ISA (as GOARCH spells it) can
// be read and compared: x86 and arm64.
func Known(isa string) bool { return cpuinfoKey(isa) != "" }

// Host returns the features of this machine's CPU, from the first
// processor listed in /proc/cpuinfo (the kernel lists the features common
// to all of them). On an architecture other than x86 and arm64 it returns
// an empty set: Missing then finds nothing missing between two such hosts.
func Host() (Features, error) {
	key := cpuinfoKey(runtime.GOARCH)
	if key == "" {
		return Features{}, nil
	}
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return nil, fmt.Errorf("cpu features: %w", err)
	}
	defer f.Close()
	feat, err := parse(f, key)
	if err != nil {
		return nil, fmt.Errorf("cpu features: /proc/cpuinfo: %w", err)
	}
	return feat, nil
}

// Parse reads text in the format of /proc/cpuinfo and returns the features
// of its first processor: the first "flags" line (x86) or "Features" line
// (arm64), whichever comes first. Text with neither yields an empty set.
func Parse(r io.Reader) (Features, error) {
	return parse(r, "")
}

// parse is Parse looking for key only, or for either key if key is "".
func parse(r io.Reader, key string) (Features, error) {
	sc := bufio.NewScanner(r)
	// A flags line is about 1.5 KiB today; leave room for growth.
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if k == key || key == "" && (k == "flags" || k == "Features") {
			return New(strings.Fields(v)...), nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return Features{}, nil
}

// Missing returns, sorted, the flags in need that are not in have, leaving
// out those that Ignorable reports. A pod started on a CPU with features
// need can run on one with features have if Missing returns nothing.
func Missing(have, need Features) []string {
	var missing []string
	for _, flag := range need {
		if !have.Has(flag) && !Ignorable(flag) {
			missing = append(missing, flag)
		}
	}
	slices.Sort(missing)
	return slices.Compact(missing)
}
