package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// escapeAttempts are things a pod's root must not do to its host, each a
// shell command that must fail (or print nothing) inside the pod. PKI is
// replaced by the host's PKI directory.
var escapeAttempts = []struct{ what, cmd string }{
	{"read the CA key", "cat PKI/ca-key.pem"},
	{"read the node key", "cat PKI/node-key.pem"},
	{"list the PKI directory", "ls -A PKI | grep ."},
	{"list /etc/podctl", "ls -A /etc/podctl | grep ."},
	{"read /etc/shadow", "cat /etc/shadow"},
	{"read an SSH host key", "cat /etc/ssh/ssh_host_*key"},
	{"write core_pattern", "echo '|/bin/sh' > /proc/sys/kernel/core_pattern"},
	{"write sysrq-trigger", "echo h > /proc/sysrq-trigger"},
	{"read kernel memory", "head -c 1 /proc/kcore | grep -c ."},
	{"read the kernel keyrings", "cat /proc/keys | grep ."},
	{"mount a filesystem", "mount -t tmpfs escape /mnt"},
	{"load a kernel module", `python3 -c 'import ctypes,sys; sys.exit(ctypes.CDLL(None, use_errno=True).init_module(None, 0, b"") != 0)'`},
	{"run without a seccomp filter", `grep -q '^Seccomp:[[:space:]]*0' /proc/self/status`},
	{"create a user namespace", "unshare --user true"},
	{"run without no_new_privs (setuid binaries would gain privileges)", `python3 -c 'import ctypes,sys; sys.exit(ctypes.CDLL(None).prctl(39, 0, 0, 0, 0) == 1)'`},
}

// TestPodCannotEscape runs escapeAttempts as root in a pod of the host
// image, created with the host's keys in a PKI directory outside podctl's
// state, then again after the pod was checkpointed and restored: every
// attempt fails, while the same pod can read its own files.
func TestPodCannotEscape(t *testing.T) {
	h := newHost(t)
	// Outside the host's private directories (/tmp, /var/tmp, /root):
	// only podctl's hiding keeps it from the pod.
	base, err := os.MkdirTemp("/var/lib", "podctl-isolation-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	pki := filepath.Join(base, "pki")
	for _, args := range [][]string{{"pki", "init", pki}, {"pki", "issue", pki, "node"}} {
		if out, err := exec.Command(h.Binary, args...).CombinedOutput(); err != nil {
			t.Fatalf("podctl %v: %v\n%s", args, err, out)
		}
	}
	create := h.Command(h.PodctlArgv("create", "--name", "intruder", "--", "sleep", "100000")...)
	create.Env = append(os.Environ(), "PODCTL_PKI="+pki)
	if r := h.RunCmd(create); r.Code != 0 {
		t.Fatalf("create: %s", r.Stderr)
	}
	// A key the host makes once the pod runs is hidden all the same.
	if err := os.WriteFile(filepath.Join(pki, "late-key.pem"), []byte("late"), 0o600); err != nil {
		t.Fatal(err)
	}

	attempt := func(t *testing.T) {
		t.Helper()
		// The control: the pod's root reads its own files and runs python.
		h.MustPodctl("exec", "intruder", "--", "sh", "-c", "cat /etc/hostname && python3 -c 'pass'")
		for _, a := range escapeAttempts {
			r := h.Podctl("exec", "intruder", "--", "sh", "-c", strings.ReplaceAll(a.cmd, "PKI", pki))
			if r.Code == 0 {
				t.Errorf("a pod could %s (%s): %s", a.what, a.cmd, r.Stdout)
			}
		}
	}
	t.Run("created", attempt)
	h.MustPodctl("checkpoint", "intruder")
	h.MustPodctl("restore", "intruder")
	t.Run("restored", attempt)
}
