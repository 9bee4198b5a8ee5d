//go:build soak

package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// TestSoak migrates a stateful pod (a counter file, a TCP connection a
// client keeps busy, 64 MiB of checksummed memory) between two hosts
// $PODCTL_SOAK_ROUNDS times (500 by default), and checks that nothing
// grows on either host: file descriptors and memory of the docks,
// mounts, cgroups, nftables rules, links, leases and the state roots'
// disk. It runs with `make soak`, not in CI (build tag soak).
func TestSoak(t *testing.T) {
	harness.RequireRoot(t)
	rounds := 500
	if v := os.Getenv("PODCTL_SOAK_ROUNDS"); v != "" {
		var err error
		if rounds, err = strconv.Atoi(v); err != nil {
			t.Fatalf("PODCTL_SOAK_ROUNDS=%q: %v", v, err)
		}
	}
	lan := harness.NewLAN(t, podctlBin, 2)
	pki := lan.PKI(t)
	docks := []*harness.Dock{lan.StartDock(t, 0, pki), lan.StartDock(t, 1, pki)}
	a := lan.Hosts[0]
	a.MustPodctl("create", "--name", "soak", "--env", "ECHO="+workload(t, "echo.py"), "--", "sh", "-c",
		`python3 -c "$ECHO" 64 & i=0; while true; do i=$((i+1)); echo $i >> /tmp/counter; sleep 0.1; done`)
	podFile(t, a, "soak", "/tmp/ready")
	ip := a.Inspect("soak").Endpoint.IP
	client := startClient(t, lan, ip)
	client.advance(t, 20)

	at := 0
	move := func() {
		to := 1 - at
		r := lan.Hosts[at].Podctl("migrate", "soak", "--to", lan.DockAddr(to), "--pki", pki)
		if r.Code != 0 {
			t.Fatalf("migration %d → %d failed: %s", at, to, r.Stderr)
		}
		at = to
		// The held connection answers before the next move (moves in
		// a row with none between would compound its retransmission
		// backoff, which no real use does).
		client.advance(t, 1)
	}
	// Warm up (first-time caches), then take the baseline.
	for i := 0; i < 10; i++ {
		move()
	}
	before := []soakMeasure{measureSoak(t, lan.Hosts[0], docks[0]), measureSoak(t, lan.Hosts[1], docks[1])}
	start := time.Now()
	for i := 0; i < rounds; i++ {
		move()
		if i%50 == 49 {
			t.Logf("%d migrations, %v", i+1, time.Since(start).Round(time.Second))
		}
	}
	elapsed := time.Since(start)
	client.advance(t, 20)
	h := lan.Hosts[at]
	h.MustPodctl("exec", "soak", "--", "touch", "/tmp/check")
	if got := strings.TrimSpace(podFile(t, h, "soak", "/tmp/result")); got != "mem-ok" {
		t.Fatalf("memory after %d migrations: %s", rounds, got)
	}
	n := consecutive(t, "counter", h.MustPodctl("exec", "soak", "--", "cat", "/tmp/counter"))
	client.finish(t)
	if at != 0 {
		move() // measure with the pod where the baseline had it
	}
	after := []soakMeasure{measureSoak(t, lan.Hosts[0], docks[0]), measureSoak(t, lan.Hosts[1], docks[1])}
	t.Logf("%d migrations in %v (%v each); counter at %d without a gap", rounds, elapsed.Round(time.Second), (elapsed / time.Duration(rounds)).Round(time.Millisecond), n)
	for i := range before {
		t.Logf("host %d before: %s", i, before[i])
		t.Logf("host %d after:  %s", i, after[i])
		if d := before[i].grown(after[i]); d != "" {
			t.Errorf("host %d grew: %s", i, d)
		}
	}
}

// soakMeasure is what a host holds that a leak would grow.
type soakMeasure struct {
	dockFDs, mounts, cgroups, rules, links, leases int
	dockRSS, rootDisk                              int64
}

func (m soakMeasure) String() string {
	return fmt.Sprintf("dock fds %d, dock RSS %d KiB, mounts %d, cgroups %d, nftables lines %d, links %d, leases %d, root disk %d KiB",
		m.dockFDs, m.dockRSS>>10, m.mounts, m.cgroups, m.rules, m.links, m.leases, m.rootDisk>>10)
}

// grown says what grew from m to n beyond noise: counts must not grow
// at all; the dock's RSS may vary by 16 MiB (the Go heap's scavenging),
// the disk by 1 MiB (logs).
func (m soakMeasure) grown(n soakMeasure) string {
	var out []string
	counts := [][3]any{{"dock fds", m.dockFDs, n.dockFDs}, {"mounts", m.mounts, n.mounts}, {"cgroups", m.cgroups, n.cgroups},
		{"nftables lines", m.rules, n.rules}, {"links", m.links, n.links}, {"leases", m.leases, n.leases}}
	for _, c := range counts {
		if c[2].(int) > c[1].(int) {
			out = append(out, fmt.Sprintf("%s %d → %d", c[0], c[1], c[2]))
		}
	}
	if n.dockRSS > m.dockRSS+16<<20 {
		out = append(out, fmt.Sprintf("dock RSS %d → %d KiB", m.dockRSS>>10, n.dockRSS>>10))
	}
	if n.rootDisk > m.rootDisk+1<<20 {
		out = append(out, fmt.Sprintf("root disk %d → %d KiB", m.rootDisk>>10, n.rootDisk>>10))
	}
	return strings.Join(out, ", ")
}

// measureSoak measures host h and its dock.
func measureSoak(t *testing.T, h *harness.Host, d *harness.Dock) soakMeasure {
	t.Helper()
	var m soakMeasure
	pid := strconv.Itoa(d.Pid())
	fds, _ := os.ReadDir("/proc/" + pid + "/fd")
	m.dockFDs = len(fds)
	if status, err := os.ReadFile("/proc/" + pid + "/status"); err == nil {
		for _, l := range strings.Split(string(status), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.dockRSS = kb << 10
			}
		}
	}
	s := h.Snapshot()
	m.mounts, m.cgroups, m.leases = len(s.Mounts), len(s.Cgroups), len(s.Leases)
	m.rules = len(strings.Split(h.Run("nft", "list", "table", "ip", "podctl").Stdout, "\n"))
	m.links = len(s.Links)
	var rootDev uint64
	if fi, err := os.Stat(h.Root); err == nil {
		rootDev = fi.Sys().(*syscall.Stat_t).Dev
	}
	filepath.Walk(h.Root, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() && fi.Sys().(*syscall.Stat_t).Dev != rootDev {
			return filepath.SkipDir // a pod's mounted root: not the state's disk
		}
		if err == nil && fi.Mode().IsRegular() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				m.rootDisk += st.Blocks * 512
			}
		}
		return nil
	})
	return m
}
