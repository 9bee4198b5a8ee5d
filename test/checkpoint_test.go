package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// workload returns the source of a script in test/workloads.
func workload(t testing.TB, name string) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(self), "workloads", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// podFile polls until a file inside the pod exists and returns it.
func podFile(t testing.TB, h *harness.Host, pod, path string) string {
	t.Helper()
	var out string
	harness.Eventually(t, 20*time.Second, func() error {
		r := h.Podctl("exec", pod, "--", "cat", path)
		if r.Code != 0 {
			return fmt.Errorf("cat %s in %s: %s", path, pod, r.Stderr)
		}
		out = r.Stdout
		return nil
	})
	return out
}

// podProcesses maps the pod-internal PIDs of a pod's processes to their
// commands (the ps that lists them left out).
func podProcesses(t testing.TB, h *harness.Host, pod string) map[int]string {
	t.Helper()
	out := h.MustPodctl("exec", pod, "--", "ps", "-eo", "pid=,comm=")
	procs := map[int]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[1] == "ps" {
			continue
		}
		pid, _ := strconv.Atoi(f[0])
		procs[pid] = f[1]
	}
	return procs
}

// consecutive checks that text is the lines 1, 2, ..., n and returns n.
func consecutive(t testing.TB, what, text string) int {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != strconv.Itoa(i+1) {
			t.Fatalf("%s: line %d is %q, want %d (lost, repeated or reordered)", what, i+1, l, i+1)
		}
	}
	return len(lines)
}

func TestCheckpointRestoreKeepsState(t *testing.T) {
	h := newHost(t)
	h.MustPodctl("create", "--name", "keeper", "--", "python3", "-c", workload(t, "keeper.py"))
	podFile(t, h, "keeper", "/tmp/ready")
	before := podInfoIdentity(t, h, "keeper")
	procs := podProcesses(t, h, "keeper")
	if len(procs) < 6 { // init, keeper, 2 children, 2 grandchildren
		t.Fatalf("expected a process tree, got %v", procs)
	}

	out := h.MustPodctl("checkpoint", "keeper")
	p := h.Inspect("keeper")
	if p.Status != "checkpointed" || len(p.PIDs) != 0 {
		t.Fatalf("after checkpoint: status %s, pids %v (out %s)", p.Status, p.PIDs, out)
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "checkpoint.tar.zst")); err != nil {
		t.Fatalf("archive not kept in the pod's directory: %v", err)
	}
	logged, err := os.ReadFile(filepath.Join(p.Dir, "upper", "tmp", "append.log"))
	if err != nil {
		t.Fatal(err)
	}
	n := consecutive(t, "append.log at checkpoint", string(logged))
	// Restore from the pod's name: its last checkpoint.
	h.MustPodctl("restore", "keeper")
	if got := podInfoIdentity(t, h, "keeper"); got != before {
		t.Fatalf("identity changed across checkpoint/restore:\nbefore %s\nafter  %s", before, got)
	}
	if got := podProcesses(t, h, "keeper"); fmt.Sprint(sortedMap(got)) != fmt.Sprint(sortedMap(procs)) {
		t.Fatalf("pod-internal processes changed:\nbefore %v\nafter  %v", sortedMap(procs), sortedMap(got))
	}
	h.MustPodctl("exec", "keeper", "--", "touch", "/tmp/check")
	if got := strings.TrimSpace(podFile(t, h, "keeper", "/tmp/result")); got != "pipe-payload sock-payload kids-alive mem-ok" {
		t.Fatalf("restored state: %q", got)
	}
	harness.Eventually(t, 10*time.Second, func() error {
		text := h.MustPodctl("exec", "keeper", "--", "cat", "/tmp/append.log")
		if m := consecutive(t, "append.log after restore", text); m <= n {
			return fmt.Errorf("append.log has %d lines, not more than the %d at checkpoint", m, n)
		}
		return nil
	})
}

// podInfoIdentity is what must survive a checkpoint: address, MAC and
// hostname.
func podInfoIdentity(t testing.TB, h *harness.Host, pod string) string {
	t.Helper()
	p := h.Inspect(pod)
	host := strings.TrimSpace(h.MustPodctl("exec", pod, "--", "hostname"))
	mac := strings.TrimSpace(h.MustPodctl("exec", pod, "--", "cat", "/sys/class/net/eth0/address"))
	return fmt.Sprintf("ip=%s mac=%s/%s hostname=%s", p.Endpoint.IP, p.Endpoint.MAC, mac, host)
}

func sortedMap(m map[int]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%d:%s", k, v))
	}
	sort.Strings(out)
	return out
}

func TestCheckpointToFileLeaveRunning(t *testing.T) {
	h := newHost(t)
	h.MustPodctl("create", "--name", "count", "--memory", "64m", "--", "sh", "-c", `i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done`)
	waitLog(t, h, "count", "5\n")
	archive := filepath.Join(t.TempDir(), "count.tar")
	h.MustPodctl("checkpoint", "--leave-running", "--compress", "none", "-o", archive, "count")
	at := consecutive(t, "log", h.MustPodctl("logs", "count"))
	// It carries on running.
	harness.Eventually(t, 10*time.Second, func() error {
		if n := consecutive(t, "log", h.MustPodctl("logs", "count")); n <= at+3 {
			return fmt.Errorf("pod stopped counting at %d", n)
		}
		return nil
	})
	h.MustPodctl("rm", "-f", "count")
	h.MustPodctl("restore", "--name", "again", archive)
	p := h.Inspect("again")
	if p.Status != "running" {
		t.Fatalf("restored pod is %s", p.Status)
	}
	// It continues from where the checkpoint stopped it: the log it was
	// restored with ends at the checkpoint and carries on from there.
	harness.Eventually(t, 10*time.Second, func() error {
		if n := consecutive(t, "restored log", h.MustPodctl("logs", "again")); n <= at+3 {
			return fmt.Errorf("restored pod has counted to %d only", n)
		}
		return nil
	})
	limit := filepath.Join("/sys/fs/cgroup/memory", p.CgroupPath, "memory.limit_in_bytes")
	if b, err := os.ReadFile(limit); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(64<<20) {
		t.Fatalf("memory limit after restore: %q %v", b, err)
	}
}

// TestRestoreAfterPodctlReplaced checkpoints a pod, replaces the podctl
// binary by a different one (as an upgrade would) and restores the pod
// with it: the pod must map the init it was dumped with, or CRIU refuses.
// The copied podctl has no podinit next to it, so its pods run podctl's
// own Go init: this test is also that init's checkpoint and restore test.
func TestRestoreAfterPodctlReplaced(t *testing.T) {
	h := newHost(t)
	bin := filepath.Join(t.TempDir(), "podctl")
	copyFile(t, h.Binary, bin)
	h.Binary = bin
	h.MustPodctl("create", "--name", "count", "--", "sh", "-c", `i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done`)
	waitLog(t, h, "count", "5\n")
	h.MustPodctl("checkpoint", "count")
	at := consecutive(t, "log", h.MustPodctl("logs", "count"))

	// A different binary in the same place: one byte longer, a new mtime.
	f, err := os.OpenFile(bin, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	f.Close()

	h.MustPodctl("restore", "count")
	harness.Eventually(t, 10*time.Second, func() error {
		if n := consecutive(t, "log", h.MustPodctl("logs", "count")); n <= at+3 {
			return fmt.Errorf("restored pod has counted to %d only", n)
		}
		return nil
	})
	// A pod created now uses the new binary.
	h.MustPodctl("create", "--name", "fresh", "--", "sleep", "1000")
	if p := h.Inspect("fresh"); p.Status != "running" {
		t.Fatalf("fresh pod is %s", p.Status)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointDuringVfork checkpoints, again and again, a pod that
// spends half its time waiting in vfork (test/workloads/vfork.c). CRIU
// cannot dump a process in vfork (see virtns.Freeze); each checkpoint
// must still succeed, the pod run on, and the last archive restore.
func TestCheckpointDuringVfork(t *testing.T) {
	h := newHost(t)
	cc := harness.NeedTool(t, "cc", "gcc")
	img := t.TempDir()
	for _, d := range []string{"etc", "bin", "tmp"} {
		os.MkdirAll(filepath.Join(img, d), 0o755)
	}
	_, self, _, _ := runtime.Caller(0)
	if out, err := exec.Command(cc, "-static", "-O2", "-o", filepath.Join(img, "bin", "vfork"), filepath.Join(filepath.Dir(self), "workloads", "vfork.c")).CombinedOutput(); err != nil {
		t.Fatalf("build vfork.c: %v\n%s", err, out)
	}
	h.MustPodctl("create", "--name", "vf", "--image", img, "--", "/bin/vfork")
	waitLog(t, h, "vf", "3\n")
	archive := filepath.Join(t.TempDir(), "vf.tar")
	at := 0
	for i := 0; i < 10; i++ {
		h.MustPodctl("checkpoint", "--leave-running", "--compress", "none", "-o", archive, "vf")
		harness.Eventually(t, 10*time.Second, func() error {
			n := consecutive(t, "log", h.MustPodctl("logs", "vf"))
			if n <= at {
				return fmt.Errorf("pod stopped counting at %d", n)
			}
			at = n
			return nil
		})
	}
	h.MustPodctl("rm", "-f", "vf")
	h.MustPodctl("restore", "--name", "again", archive)
	harness.Eventually(t, 10*time.Second, func() error {
		if n := consecutive(t, "restored log", h.MustPodctl("logs", "again")); n <= at+3 {
			return fmt.Errorf("restored pod has counted to %d only", n)
		}
		return nil
	})
}
