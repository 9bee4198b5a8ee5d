package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Leftovers lists what of a removed pod is still on the system: its veth
// ends, nftables rules, mounts, cgroups, leases and directory. Empty means
// the pod is entirely gone.
func (h *Host) Leftovers(p PodInfo) []string {
	var left []string
	links := h.Run("ip", "-o", "link", "show").Stdout
	for _, l := range []string{p.Endpoint.HostVeth, p.Endpoint.PodVeth} {
		if l != "" && strings.Contains(links, l) {
			left = append(left, "link "+l)
		}
	}
	if p.ID != "" && strings.Contains(h.Run("nft", "list", "table", "ip", "podctl").Stdout, "pod:"+p.ID) {
		left = append(left, "nftables rule pod:"+p.ID)
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil && p.Dir != "" && strings.Contains(string(mi), p.Dir) {
		left = append(left, "mount under "+p.Dir)
	}
	if p.CgroupPath != "" {
		cgs, _ := filepath.Glob("/sys/fs/cgroup/*" + p.CgroupPath)
		cgs2, _ := filepath.Glob("/sys/fs/cgroup" + p.CgroupPath)
		for _, c := range append(cgs, cgs2...) {
			left = append(left, "cgroup "+c)
		}
	}
	leases, _ := filepath.Glob(filepath.Join(h.Root, "leases", "*", "*"))
	for _, l := range leases {
		if b, err := os.ReadFile(l); err == nil && p.ID != "" && strings.TrimSpace(string(b)) == p.ID {
			left = append(left, "lease "+l)
		}
	}
	if p.Dir != "" {
		if _, err := os.Stat(p.Dir); err == nil {
			left = append(left, "directory "+p.Dir)
		}
	}
	return left
}

// Snapshot is a fingerprint of everything podctl could leave behind on a
// host. Two equal snapshots mean a command left nothing.
type Snapshot struct {
	Links, Rules, Mounts, Cgroups, Leases, PodDirs []string
}

// Snapshot takes the host's fingerprint.
func (h *Host) Snapshot() Snapshot {
	var s Snapshot
	for _, l := range strings.Split(h.Run("ip", "-o", "link", "show").Stdout, "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			s.Links = append(s.Links, strings.TrimSuffix(f[1], ":"))
		}
	}
	for _, l := range strings.Split(h.Run("nft", "list", "table", "ip", "podctl").Stdout, "\n") {
		// A running dock's guard of its port (tag dock:PORT) is the
		// dock's, not any pod's or migration's.
		if strings.Contains(l, `comment "dock:`) {
			continue
		}
		if strings.Contains(l, "comment") || strings.Contains(l, "elements") {
			s.Rules = append(s.Rules, strings.TrimSpace(l))
		}
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(mi), "\n") {
			if strings.Contains(l, h.Root) {
				s.Mounts = append(s.Mounts, l)
			}
		}
	}
	s.Cgroups, _ = filepath.Glob("/sys/fs/cgroup/*/podctl/*")
	s.Leases, _ = filepath.Glob(filepath.Join(h.Root, "leases", "*", "*"))
	s.PodDirs, _ = filepath.Glob(filepath.Join(h.Root, "pods", "*"))
	for _, l := range [][]string{s.Links, s.Rules, s.Mounts, s.Cgroups, s.Leases, s.PodDirs} {
		sort.Strings(l)
	}
	return s
}

// Diff describes how b differs from a, or returns "" when they are equal.
func (a Snapshot) Diff(b Snapshot) string {
	var out []string
	cmp := func(what string, x, y []string) {
		if strings.Join(x, "\n") != strings.Join(y, "\n") {
			out = append(out, fmt.Sprintf("%s: before %q, after %q", what, x, y))
		}
	}
	cmp("links", a.Links, b.Links)
	cmp("nftables", a.Rules, b.Rules)
	cmp("mounts", a.Mounts, b.Mounts)
	cmp("cgroups", a.Cgroups, b.Cgroups)
	cmp("leases", a.Leases, b.Leases)
	cmp("pod dirs", a.PodDirs, b.PodDirs)
	return strings.Join(out, "\n")
}

// WithoutPods is the snapshot without the cgroups of the pods with the
// given IDs. Cgroups are machine-wide, so a host's snapshot holds those of
// every host's pods: a test that moves a pod between other hosts (and so
// renews its ID) leaves them out.
func (a Snapshot) WithoutPods(ids ...string) Snapshot {
	var cgroups []string
	for _, c := range a.Cgroups {
		if !slices.Contains(ids, filepath.Base(c)) {
			cgroups = append(cgroups, c)
		}
	}
	a.Cgroups = cgroups
	return a
}
