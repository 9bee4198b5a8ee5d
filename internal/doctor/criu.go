package doctor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// criuFix is what to do when the CRIU checks fail.
const criuFix = "run `make deps` (installs CRIU 4.2 from Debian unstable into /opt/podctl/criu)"

// The oldest CRIU podctl works with is criuMinMajor.criuMinMinor: older
// versions hang in every dump when hardware breakpoints do not fire, and
// cannot dump TCP/UDP sockets on Linux >= 6.16.
const (
	criuMinMajor = 4
	criuMinMinor = 2
)

// criuVersion is a CRIU release number.
type criuVersion struct {
	Major, Minor, Patch int
}

func (v criuVersion) String() string {
	if v.Patch == 0 {
		return fmt.Sprintf("%d.%d", v.Major, v.Minor)
	}
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// Less reports whether v is older than w.
func (v criuVersion) Less(w criuVersion) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	return v.Patch < w.Patch
}

// parseCRIUVersion extracts the version from the output of `criu --version`:
//
//	Version: 4.2.1
//	GitID: v4.2.1
//
// The patch number is optional ("Version: 3.17").
func parseCRIUVersion(out string) (criuVersion, error) {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Version:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return criuVersion{}, errors.New("empty Version line in criu --version output")
		}
		v, err := parseDottedVersion(fields[0])
		if err != nil {
			return criuVersion{}, fmt.Errorf("parse criu version %q: %w", fields[0], err)
		}
		return v, nil
	}
	return criuVersion{}, fmt.Errorf("no \"Version:\" line in criu --version output %q", truncate(out, 80))
}

// parseDottedVersion parses "MAJOR.MINOR" or "MAJOR.MINOR.PATCH"; the last
// number may carry a suffix ("4.2-rc1"), which is ignored.
func parseDottedVersion(s string) (criuVersion, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return criuVersion{}, errors.New("want MAJOR.MINOR[.PATCH]")
	}
	nums := make([]int, 3)
	for i, p := range parts {
		digits := p[:len(p)-len(strings.TrimLeft(p, "0123456789"))]
		if digits == "" || (digits != p && i != len(parts)-1) {
			return criuVersion{}, fmt.Errorf("bad number %q", p)
		}
		n, err := strconv.Atoi(digits)
		if err != nil {
			return criuVersion{}, fmt.Errorf("bad number %q: %w", p, err)
		}
		nums[i] = n
	}
	return criuVersion{Major: nums[0], Minor: nums[1], Patch: nums[2]}, nil
}

// truncate shortens s to at most n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
