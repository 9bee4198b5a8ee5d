// End-to-end tests of pods: real namespaces, overlayfs, cgroups, veth and
// nftables, driven through the podctl binary the way a user drives it.
package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/console"

	"github.com/podctl/podctl/test/harness"
)

var podctlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "podctl-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // TestNotRoot runs the binary as nobody
	podctlBin, err = harness.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if wasmDir != "" {
		os.RemoveAll(wasmDir)
	}
	os.Exit(code)
}

func newHost(t testing.TB) *harness.Host {
	harness.RequireRoot(t)
	return harness.NewHost(t, podctlBin)
}

// waitRunning polls until the pod's payload has written want to its log.
func waitLog(t testing.TB, h *harness.Host, pod, want string) string {
	t.Helper()
	var out string
	harness.Eventually(t, 10*time.Second, func() error {
		out = h.MustPodctl("logs", pod)
		if !strings.Contains(out, want) {
			return fmt.Errorf("log of %s is %q, want %q in it", pod, out, want)
		}
		return nil
	})
	return out
}

func TestPodNamespaces(t *testing.T) {
	h := newHost(t)
	h.MustPodctl("create", "--name", "loop", "--", "sh", "-c", `echo "started $$ $PPID"; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.2; done`)
	p := h.Inspect("loop")
	if p.Status != "running" {
		t.Fatalf("status %q, want running", p.Status)
	}
	// The payload is a direct child of the pod's PID 1.
	waitLog(t, h, "loop", "started")
	if out := h.MustPodctl("logs", "loop"); !strings.Contains(out, " 1\n") {
		t.Errorf("payload's parent is not PID 1: %q", out)
	}
	// PID 1 is podctl's init, a session leader.
	if got := h.MustPodctl("exec", "loop", "--", "cat", "/proc/1/cmdline"); !strings.HasPrefix(got, "/.podctl/init\x00_podinit") {
		t.Errorf("PID 1 is %q, want the pod init", got)
	}
	if got := strings.TrimSpace(h.MustPodctl("exec", "loop", "--", "ps", "-o", "sid=", "-p", "1")); got != "1" {
		t.Errorf("PID 1's session is %q, want 1 (a session leader)", got)
	}
	if got := strings.TrimSpace(h.MustPodctl("exec", "loop", "--", "sh", "-c", "echo $$")); got == "" || got == strconv.Itoa(p.InitPID) {
		t.Errorf("exec'd shell's PID %q looks like a host PID", got)
	}
	if got := strings.TrimSpace(h.MustPodctl("exec", "loop", "--", "hostname")); got != "loop" {
		t.Errorf("hostname %q, want loop", got)
	}
	var links []string
	for _, l := range strings.Split(strings.TrimSpace(h.MustPodctl("exec", "loop", "--", "ip", "-o", "link", "show")), "\n") {
		links = append(links, strings.TrimSuffix(strings.Fields(l)[1], ":"))
	}
	if strings.Join(links, ",") != "lo,eth0@"+strings.Split(links[len(links)-1], "@")[1] || len(links) != 2 {
		t.Errorf("links in pod: %v, want lo and eth0 only", links)
	}
	// Only the pod's processes are visible: its init, the loop, its
	// sleep and the ps itself; none of the host's.
	ps := strings.Fields(h.MustPodctl("exec", "loop", "--", "ps", "-e", "-o", "comm="))
	for _, comm := range ps {
		switch comm {
		case "init", "sh", "sleep", "ps":
		default:
			t.Errorf("process %q visible in pod (all: %v)", comm, ps)
		}
	}
	if len(ps) > 4 {
		t.Errorf("%d processes visible in pod, want at most 4: %v", len(ps), ps)
	}
	// Private /tmp and /root: the host's files are not there, and what
	// the pod writes stays in its writable layer.
	marker := filepath.Join("/tmp", "podctl-host-marker-"+h.Name)
	os.WriteFile(marker, []byte("x"), 0o644)
	defer os.Remove(marker)
	if r := h.Podctl("exec", "loop", "--", "test", "-e", marker); r.Code == 0 {
		t.Errorf("host's %s is visible in the pod", marker)
	}
	h.MustPodctl("exec", "loop", "--", "sh", "-c", "echo pod > /tmp/inpod; echo etc > /etc/podctl-test")
	if _, err := os.Stat("/etc/podctl-test"); err == nil {
		t.Errorf("a write to /etc in the pod reached the host")
	}
	if b, err := os.ReadFile(filepath.Join(p.Dir, "upper", "tmp", "inpod")); err != nil || string(b) != "pod\n" {
		t.Errorf("pod's /tmp write not in its writable layer: %q, %v", b, err)
	}
}

func TestExecPropagatesExitCodeAndStdin(t *testing.T) {
	h := newHost(t)
	h.MustPodctl("create", "--name", "ex", "--env", "GREETING=hi there", "--workdir", "/tmp", "--", "sleep", "1000")
	if r := h.Podctl("exec", "ex", "--", "sh", "-c", "exit 42"); r.Code != 42 {
		t.Errorf("exit code %d, want 42 (stderr %q)", r.Code, r.Stderr)
	}
	if r := h.Podctl("exec", "ex", "--", "sh", "-c", "kill -TERM $$"); r.Code != 128+15 {
		t.Errorf("exit code %d for a process killed by SIGTERM, want 143", r.Code)
	}
	if got := h.MustPodctl("exec", "ex", "--", "sh", "-c", `echo "$GREETING in $(pwd)"`); got != "hi there in /tmp\n" {
		t.Errorf("env/workdir: %q", got)
	}
	cmd := h.Command(h.Binary, "--root", h.Root, "exec", "-i", "ex", "--", "tr", "a-z", "A-Z")
	cmd.Stdin = strings.NewReader("hello from stdin\n")
	if r := h.RunCmd(cmd); r.Code != 0 || r.Stdout != "HELLO FROM STDIN\n" {
		t.Errorf("exec -i: code %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}

func TestStopForwardsSIGTERMAndReaps(t *testing.T) {
	h := newHost(t)
	h.MustPodctl("create", "--name", "trap", "--", "sh", "-c",
		`trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done`)
	waitLog(t, h, "trap", "ready")

	// An orphan (its parent exits at once) is reparented to PID 1,
	// which must reap it when it exits: no zombie remains.
	h.MustPodctl("exec", "trap", "--", "sh", "-c", "(sleep 0.3 &) ; exit 0")
	harness.Eventually(t, 10*time.Second, func() error {
		out := h.MustPodctl("exec", "trap", "--", "ps", "-e", "-o", "stat=,comm=")
		if strings.Contains(out, "Z") || strings.Contains(out, "sleep") && strings.Count(out, "sleep") > 1 {
			return fmt.Errorf("orphan not reaped yet:\n%s", out)
		}
		return nil
	})

	h.MustPodctl("stop", "--timeout", "30", "trap")
	p := h.Inspect("trap")
	if p.Status != "exited" || p.ExitCode == nil || *p.ExitCode != 0 {
		t.Fatalf("after stop: status %q exit %v, want exited (0): SIGTERM was not forwarded", p.Status, p.ExitCode)
	}
	waitLog(t, h, "trap", "got TERM")

	// A payload that ignores SIGTERM is killed after the timeout.
	h.MustPodctl("create", "--name", "stubborn", "--", "sh", "-c", `trap '' TERM; echo ready; while true; do sleep 0.1; done`)
	waitLog(t, h, "stubborn", "ready")
	h.MustPodctl("stop", "--timeout", "0.5", "stubborn")
	if p := h.Inspect("stubborn"); p.Status != "exited" {
		t.Fatalf("stubborn pod: status %q after stop, want exited", p.Status)
	}
}

func TestLogsFollow(t *testing.T) {
	h := newHost(t)
	h.MustPodctl("create", "--name", "talk", "--", "sh", "-c", `for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done; echo oops >&2`)
	out := h.MustPodctl("logs", "-f", "talk")
	want := "line 1\nline 2\nline 3\nline 4\nline 5\noops\n"
	if out != want {
		t.Errorf("logs -f: %q, want %q", out, want)
	}
	if p := h.Inspect("talk"); p.Status != "exited" || p.ExitCode == nil || *p.ExitCode != 0 {
		t.Errorf("status %q exit %v, want exited (0)", p.Status, p.ExitCode)
	}
	if got := h.MustPodctl("ps"); !strings.Contains(got, "exited (0)") {
		t.Errorf("ps does not show the exit status:\n%s", got)
	}
}

func TestLimits(t *testing.T) {
	h := newHost(t)
	h.MustPodctl("create", "--name", "lim", "--memory", "64m", "--pids", "40", "--", "sleep", "1000")
	p := h.Inspect("lim")
	check := func(file, want string) {
		t.Helper()
		b, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("%v", err)
			return
		}
		if got := strings.TrimSpace(string(b)); got != want {
			t.Errorf("%s = %s, want %s", file, got, want)
		}
	}
	check("/sys/fs/cgroup/memory"+p.CgroupPath+"/memory.limit_in_bytes", strconv.Itoa(64<<20))
	check("/sys/fs/cgroup/pids"+p.CgroupPath+"/pids.max", "40")
	// The pids limit is enforced: a fork bomb in the pod is contained.
	r := h.Podctl("exec", "lim", "--", "sh", "-c", `for i in $(seq 60); do sleep 5 & done; wait`)
	if r.Code == 0 {
		t.Errorf("60 processes started in a pod limited to 40")
	}
}

func TestImageDirectory(t *testing.T) {
	h := newHost(t)
	img := t.TempDir()
	for _, d := range []string{"etc", "bin", "tmp"} {
		os.MkdirAll(filepath.Join(img, d), 0o755)
	}
	if err := harness.BuildStatic(filepath.Join(img, "bin", "hello"), "./test/workloads/hello"); err != nil {
		t.Fatal(err)
	}
	h.MustPodctl("create", "--name", "img", "--image", img, "--", "/bin/hello", "from", "image")
	out := waitLog(t, h, "img", "hello from image")
	if !strings.Contains(out, "hostname=img") {
		t.Errorf("log %q", out)
	}
	// The image itself is never written to.
	if entries, _ := os.ReadDir(filepath.Join(img, "tmp")); len(entries) != 0 {
		t.Errorf("pod wrote into its image: %v", entries)
	}
}

func TestExecTTY(t *testing.T) {
	h := newHost(t)
	h.MustPodctl("create", "--name", "tty", "--", "sleep", "1000")
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatalf("open a pty: %v", err)
	}
	defer master.Close()
	slave, err := os.OpenFile(slavePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	var out strings.Builder
	copied := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			out.Write(buf[:n])
			if err != nil || strings.Contains(out.String(), "END") {
				close(copied)
				return
			}
		}
	}()
	cmd := h.Command(h.Binary, "--root", h.Root, "exec", "-t", "tty", "--", "sh", "-c", "tty; test -t 0 && echo stdin-is-tty; echo END")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if r := h.RunCmd(cmd); r.Code != 0 {
		t.Fatalf("exec -t: exit %d", r.Code)
	}
	select {
	case <-copied:
	case <-time.After(10 * time.Second):
		t.Fatalf("no END from the pod's terminal; got %q", out.String())
	}
	// The terminal is the pod's own (its private devpts), not the host's.
	if got := out.String(); !strings.Contains(got, "/dev/pts/0") || !strings.Contains(got, "stdin-is-tty") {
		t.Errorf("exec -t output %q: want a terminal from the pod's devpts", got)
	}
}
