package test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// Exit statuses of podctl (internal/errdefs); duplicated here on purpose:
// they are a public interface, and a renumbering must break this test.
const (
	exitUsage         = 2
	exitInvalidName   = 3
	exitInvalidPort   = 4
	exitNotFound      = 5
	exitAlreadyExists = 6
	exitConflict      = 7
	exitInvalidImage  = 8
	exitNotRoot       = 9
	exitUnsupported   = 10
	exitNotFoundCmd   = 127
	exitNotExecCmd    = 126
	exitInvalidArg    = 11
)

func TestBadInput(t *testing.T) {
	h := newHost(t)
	h.MustPodctl("create", "--name", "taken", "-p", "18090:80", "--", "sleep", "1000")
	notRootfs := t.TempDir()
	os.WriteFile(notRootfs+"/file", []byte("x"), 0o644)

	// A host process already listening on a port.
	ln := h.Command("python3", "-c", `import socket,sys; s=socket.socket(); s.bind(("0.0.0.0",18091)); s.listen(); print("up",flush=True); sys.stdin.read()`)
	stdin, _ := ln.StdinPipe()
	lnOut := &strings.Builder{}
	ln.Stdout = lnOut
	if err := ln.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); ln.Wait() }()
	harness.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(lnOut.String(), "up") {
			return fmt.Errorf("host listener not up")
		}
		return nil
	})

	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown pod exec", []string{"exec", "nosuch", "--", "true"}, exitNotFound, "no such pod: nosuch"},
		{"unknown pod rm", []string{"rm", "nosuch"}, exitNotFound, "no such pod"},
		{"unknown pod stop", []string{"stop", "nosuch"}, exitNotFound, "no such pod"},
		{"unknown pod logs", []string{"logs", "nosuch"}, exitNotFound, "no such pod"},
		{"unknown pod inspect", []string{"inspect", "nosuch"}, exitNotFound, "no such pod"},
		{"duplicate name", []string{"create", "--name", "taken", "--", "true"}, exitAlreadyExists, "already exists"},
		{"invalid name", []string{"create", "--name", "Bad_Name", "--", "true"}, exitInvalidName, "invalid name"},
		{"invalid name traversal", []string{"create", "--name", "../x", "--", "true"}, exitInvalidName, "invalid name"},
		{"invalid network name", []string{"create", "--network", "A B", "--", "true"}, exitInvalidName, "invalid name"},
		{"port without colon", []string{"create", "-p", "80", "--", "true"}, exitInvalidPort, "invalid port"},
		{"port zero", []string{"create", "-p", "0:80", "--", "true"}, exitInvalidPort, "invalid port"},
		{"port too big", []string{"create", "-p", "70000:80", "--", "true"}, exitInvalidPort, "invalid port"},
		{"port protocol", []string{"create", "-p", "80:80/sctp", "--", "true"}, exitInvalidPort, "invalid port"},
		{"port letters", []string{"create", "-p", "a:b", "--", "true"}, exitInvalidPort, "invalid port"},
		{"port already published", []string{"create", "-p", "18090:80", "--", "sleep", "1"}, exitConflict, "already published"},
		{"port twice in one pod", []string{"create", "-p", "18092:80", "-p", "18092:81", "--", "sleep", "1"}, exitConflict, "published twice"},
		{"port used by a host process", []string{"create", "-p", "18091:80", "--", "sleep", "1"}, exitConflict, "in use"},
		{"missing command", []string{"create", "--name", "nocmd"}, exitUsage, "missing command"},
		{"missing command after --", []string{"create", "--name", "nocmd", "--"}, exitUsage, "missing command"},
		{"unknown flag", []string{"create", "--bogus", "--", "true"}, exitUsage, "unknown flag"},
		{"command not found", []string{"create", "--name", "nf", "--", "no-such-command-here"}, exitNotFoundCmd, "not found in the pod"},
		{"command not executable", []string{"create", "--name", "nx", "--", "/etc/hostname"}, exitNotExecCmd, "not executable"},
		{"exec command not found", []string{"exec", "taken", "--", "no-such-command-here"}, exitNotFoundCmd, "not found in the pod"},
		{"exec missing command", []string{"exec", "taken"}, exitUsage, "missing command"},
		{"image not a rootfs", []string{"create", "--name", "img", "--image", notRootfs, "--", "/bin/sh"}, exitInvalidImage, "not a root filesystem"},
		{"image missing", []string{"create", "--name", "img", "--image", "/nonexistent/rootfs", "--", "/bin/sh"}, exitInvalidImage, "no such file"},
		{"image is a file", []string{"create", "--name", "img", "--image", notRootfs + "/file", "--", "/bin/sh"}, exitInvalidImage, "not a directory"},
		{"bad memory", []string{"create", "--memory", "lots", "--", "true"}, 11, "invalid size"},
		{"bad env", []string{"create", "--env", "NOEQUALS", "--", "true"}, 11, "invalid environment"},
		{"relative workdir", []string{"create", "--workdir", "tmp", "--", "true"}, 11, "absolute"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.Snapshot()
			r := h.Podctl(tc.args...)
			if r.Code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", r.Code, tc.code, r.Stderr)
			}
			checkOneLine(t, r.Stderr, tc.msg)
			if diff := before.Diff(h.Snapshot()); diff != "" {
				t.Errorf("left behind:\n%s", diff)
			}
		})
	}
}

// checkOneLine checks that stderr is one line, prefixed "podctl: ",
// containing msg.
func checkOneLine(t *testing.T, stderr, msg string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "podctl: ") || !strings.Contains(stderr, msg) {
		t.Errorf("stderr %q: want one line \"podctl: ...%s...\"", stderr, msg)
	}
}

func TestNotRoot(t *testing.T) {
	h := newHost(t)
	for _, args := range [][]string{{"ps"}, {"create", "--", "true"}, {"rm", "x"}} {
		cmd := exec.Command(h.Binary, append([]string{"--root", h.Root}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		r := h.RunCmd(cmd)
		if r.Code != exitNotRoot {
			t.Errorf("%v as nobody: exit %d, want %d (stderr %q)", args, r.Code, exitNotRoot, r.Stderr)
		}
		checkOneLine(t, r.Stderr, "must run as root")
	}
}

// TestDoctor runs the real checks. CI installs every requirement, so the
// report must be clean there; with CRIU missing it must fail.
func TestDoctor(t *testing.T) {
	h := newHost(t)
	r := h.Podctl("doctor", "--json")
	if r.Code != 0 {
		t.Errorf("doctor: exit %d: %s\n%s", r.Code, r.Stderr, r.Stdout)
	}
	for _, want := range []string{`"overlay`, `criu`, `"status"`} {
		if !strings.Contains(strings.ToLower(r.Stdout), strings.ToLower(want)) {
			t.Errorf("doctor --json lacks %s:\n%s", want, r.Stdout)
		}
	}
	r = h.Podctl("doctor", "--criu", "/nonexistent/criu")
	if r.Code != exitUnsupported {
		t.Errorf("doctor with CRIU missing: exit %d, want %d\n%s", r.Code, exitUnsupported, r.Stdout)
	}
	if !strings.Contains(r.Stdout, "make deps") {
		t.Errorf("doctor does not say how to fix a missing CRIU:\n%s", r.Stdout)
	}
}
