package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// tmuxType types keys into the tmux pane target of pod, then Enter.
func tmuxType(t *testing.T, h *harness.Host, pod, target, keys string) {
	t.Helper()
	h.MustPodctl("exec", pod, "--", "tmux", "send-keys", "-t", target, keys, "Enter")
}

// paneShows polls until the tmux pane target of pod shows every line of
// want (its screen and its scrollback), and returns what it shows.
func paneShows(t *testing.T, h *harness.Host, pod, target string, want ...string) string {
	t.Helper()
	var text string
	harness.Eventually(t, 20*time.Second, func() error {
		r := h.Podctl("exec", pod, "--", "tmux", "capture-pane", "-p", "-S", "-", "-t", target)
		if r.Code != 0 {
			return fmt.Errorf("capture-pane %s: %s", target, r.Stderr)
		}
		text = r.Stdout
		lines := strings.Split(text, "\n")
		for _, w := range want {
			found := false
			for _, l := range lines {
				found = found || strings.TrimSpace(l) == w
			}
			if !found {
				return fmt.Errorf("pane %s does not show %q:\n%s", target, w, text)
			}
		}
		return nil
	})
	return text
}

// TestPtysSurviveCheckpoint checkpoints and restores a pod of terminals
// that is not a desktop: a tmux server holding the masters of three
// ptys, with bash in two panes and script(1) in the third, itself
// holding a pty with bash in it. Each terminal keeps its scrollback,
// each shell its working directory, and typing into each still runs
// commands: script, which waits in poll(2) with every signal blocked,
// no longer sees that poll fail with EINTR after a restore (see
// virtns/pollrestart.go), which made it kill its shell and exit. A
// pane running dash, which holds /dev/tty open, makes CRIU refuse the
// dump (criu/tty.c, tty_verify_ctty): the refusal names the way out, and
// the pod runs on untouched.
func TestPtysSurviveCheckpoint(t *testing.T) {
	h := newHost(t)
	harness.NeedTool(t, "tmux", "tmux")
	h.MustPodctl("create", "--name", "ttys", "--", "sh", "-c",
		"tmux -f /dev/null new-session -d -s work -x 80 -y 24 bash && tmux new-window -t work bash && "+
			"tmux new-window -t work 'SHELL=/bin/bash exec script -q /tmp/typescript' && exec sleep infinity")
	harness.Eventually(t, 20*time.Second, func() error {
		if r := h.Podctl("exec", "ttys", "--", "tmux", "has-session", "-t", "work"); r.Code != 0 {
			return fmt.Errorf("no tmux session yet: %s", r.Stderr)
		}
		return nil
	})
	tmuxType(t, h, "ttys", "work:0", "cd /tmp && echo first-$((6*7))")
	tmuxType(t, h, "ttys", "work:1", "cd /var && echo second-$((6*7))")
	paneShows(t, h, "ttys", "work:0", "first-42")
	before := paneShows(t, h, "ttys", "work:1", "second-42")
	tmuxType(t, h, "ttys", "work:2", "cd /etc && echo third-$((6*7))")
	paneShows(t, h, "ttys", "work:2", "third-42")

	h.MustPodctl("checkpoint", "ttys")
	h.MustPodctl("restore", "ttys")

	paneShows(t, h, "ttys", "work:1", strings.Split(strings.TrimRight(before, "\n"), "\n")...)
	tmuxType(t, h, "ttys", "work:0", "echo first-again $PWD $(tty)")
	paneShows(t, h, "ttys", "work:0", "first-42", "first-again /tmp /dev/pts/0")
	tmuxType(t, h, "ttys", "work:1", "echo second-again $PWD $(tty)")
	paneShows(t, h, "ttys", "work:1", "second-42", "second-again /var /dev/pts/1")
	// script's bash is on the pty after tmux's third, pts/3.
	tmuxType(t, h, "ttys", "work:2", "echo third-again $PWD $(tty)")
	paneShows(t, h, "ttys", "work:2", "third-42", "third-again /etc /dev/pts/3")

	tmuxType(t, h, "ttys", "work:1", "tmux new-window -t work:3 sh")
	harness.Eventually(t, 20*time.Second, func() error {
		if r := h.Podctl("exec", "ttys", "--", "tmux", "has-session", "-t", "work:3"); r.Code != 0 {
			return fmt.Errorf("no dash window yet: %s", r.Stderr)
		}
		return nil
	})
	r := h.Podctl("checkpoint", "ttys")
	if r.Code == 0 || !strings.Contains(r.Stderr, "ctty inheritance detected") || !strings.Contains(r.Stderr, "run bash there") {
		t.Fatalf("checkpoint with dash in a tmux pane: exit %d, %s; want CRIU's refusal and the way out", r.Code, r.Stderr)
	}
	if lines := strings.Count(strings.TrimSpace(r.Stderr), "\n"); lines != 0 {
		t.Errorf("the refusal takes %d lines, want one:\n%s", lines+1, r.Stderr)
	}
	tmuxType(t, h, "ttys", "work:3", "echo dash-$((6*7))")
	paneShows(t, h, "ttys", "work:3", "dash-42")
	tmuxType(t, h, "ttys", "work:0", "echo still-$((6*7))")
	paneShows(t, h, "ttys", "work:0", "first-again /tmp /dev/pts/0", "still-42")
}

// TestSSHSessionSurvivesCheckpoint checkpoints and restores a pod running
// sshd while a client on the host is logged in with a terminal: sshd's
// session process holds the pty's master, bash the other end. The
// client keeps its TCP connection across the checkpoint and restore, and
// what it types afterwards runs in the same shell, in the same working
// directory, on the same pty.
func TestSSHSessionSurvivesCheckpoint(t *testing.T) {
	h := newHost(t)
	harness.NeedTool(t, "sshd", "openssh-server")
	harness.NeedTool(t, "ssh", "openssh-client")
	key := filepath.Join(t.TempDir(), "key")
	if r := h.Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key); r.Code != 0 {
		t.Fatalf("ssh-keygen: %s", r.Stderr)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	// The pod's own host key and authorized key; an /etc/shadow of the
	// pod's own, since the host image hides the host's and sshd takes an
	// account without one for locked.
	h.MustPodctl("create", "--name", "sshp", "--", "sh", "-c",
		"mkdir -p /run/sshd && printf '%s\\n' \"$1\" >/tmp/authorized_keys && "+
			"ssh-keygen -q -t ed25519 -N '' -f /tmp/host_key && echo 'root:NP::0:99999:7:::' >/etc/shadow && "+
			"exec /usr/sbin/sshd -D -e -h /tmp/host_key -o AuthorizedKeysFile=/tmp/authorized_keys "+
			"-o PermitRootLogin=prohibit-password -o StrictModes=no -o UsePAM=no",
		"sh", strings.TrimSpace(string(pub)))
	ip := h.Inspect("sshp").Endpoint.IP
	waitLog(t, h, "sshp", "Server listening on 0.0.0.0 port 22")

	client := h.Command("ssh", "-tt", "-i", key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "root@"+ip)
	stdin, err := client.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out harness.SyncBuffer
	client.Stdout, client.Stderr = &out, &out
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = client.Wait(); close(exited) }()
	t.Cleanup(func() {
		stdin.Close()
		client.Process.Kill()
		<-exited
	})
	// sees polls until the client's terminal shows a line that is want.
	sees := func(want string) {
		t.Helper()
		harness.Eventually(t, 20*time.Second, func() error {
			select {
			case <-exited:
				t.Fatalf("ssh exited (%v) before showing %q:\n%s", waitErr, want, out.String())
			default:
			}
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.HasSuffix(strings.TrimRight(l, "\r"), want) {
					return nil
				}
			}
			return fmt.Errorf("the terminal does not show %q:\n%s", want, out.String())
		})
	}
	fmt.Fprintln(stdin, "cd /var && echo before-$((6*7)) $(tty)")
	sees("before-42 /dev/pts/0")

	h.MustPodctl("checkpoint", "sshp")
	h.MustPodctl("restore", "sshp")

	fmt.Fprintln(stdin, "echo after-$((6*7)) $PWD $(tty)")
	sees("after-42 /var /dev/pts/0")
	fmt.Fprintln(stdin, "exit")
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("ssh after exit: %v\n%s", waitErr, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("ssh still runs 20 s after exit:\n%s", out.String())
	}
}
