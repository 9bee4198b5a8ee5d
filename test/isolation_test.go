package test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/podctl/podctl/test/harness"
)

// escapeAttempts are things a pod's root must not do to its host, each a
// shell command that must fail (or print nothing) inside the pod. PKI is
// replaced by the host's PKI directory, ROOT by its podctl state root,
// DOCKPID by its dock's process ID, DOCK by its dock's address.
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
	// Masked directories: a tmpfs at create, an empty read-only bind
	// after a restore (virtns/masked.go).
	{"see the firmware's tables", "ls -A /sys/firmware | grep ."},
	{"write into a masked directory", "touch /sys/firmware/x || touch /proc/acpi/x"},
	{"make a masked directory writable", "mount -o remount,rw /sys/firmware || mount -o remount,bind,rw /sys/firmware"},
	{"load a kernel module", `python3 -c 'import ctypes,sys; sys.exit(ctypes.CDLL(None, use_errno=True).init_module(None, 0, b"") != 0)'`},
	{"run without a seccomp filter", `grep -q '^Seccomp:[[:space:]]*0' /proc/self/status`},
	{"create a user namespace", "unshare --user true"},
	{"run without no_new_privs (setuid binaries would gain privileges)", `python3 -c 'import ctypes,sys; sys.exit(ctypes.CDLL(None).prctl(39, 0, 0, 0, 0) == 1)'`},
	{"see the host's network interfaces", `ip -o link show | grep -v -E '^[0-9]+: (lo|eth0)[:@]'`},
	{"open a raw socket on the host's uplink", `python3 -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW).bind(("uplink0", 0))'`},
	{"ptrace the host's dock", `python3 -c 'import ctypes,sys; sys.exit(ctypes.CDLL(None).ptrace(16, DOCKPID, 0, 0) != 0)'`},
	{"list podctl's pods", "ls -A ROOT/pods | grep ."},
	{"reach its host's dock", `python3 -c 'import socket; socket.create_connection(("DOCK", 7070), timeout=2)'`},
	{"reach its host's dock through its gateway", `python3 -c 'import socket; socket.create_connection(("10.88.0.1", 7070), timeout=2)'`},
}

// TestPodCannotEscape runs escapeAttempts as root in a pod of the host
// image, on a host whose PKI directory lies outside podctl's state and
// whose dock runs: after the pod is created, after it is checkpointed and
// restored, and at the destination of its migration. Every attempt
// fails, while the same pod can read its own files.
func TestPodCannotEscape(t *testing.T) {
	harness.RequireRoot(t)
	lan := harness.NewLAN(t, podctlBin, 2)
	a, b := lan.Hosts[0], lan.Hosts[1]
	// Outside the host's private directories (/tmp, /var/tmp, /root):
	// only podctl's hiding keeps it from the pod.
	base, err := os.MkdirTemp("/var/lib", "podctl-isolation-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	pki := lan.PKIIn(t, filepath.Join(base, "pki"))
	docks := []*harness.Dock{lan.StartDock(t, 0, pki), lan.StartDock(t, 1, pki)}
	create := a.Command(a.PodctlArgv("create", "--name", "intruder", "--", "sleep", "100000")...)
	create.Env = append(os.Environ(), "PODCTL_PKI="+pki)
	if r := a.RunCmd(create); r.Code != 0 {
		t.Fatalf("create: %s", r.Stderr)
	}
	// A key the host makes once the pod runs is hidden all the same.
	if err := os.WriteFile(filepath.Join(pki, "late-key.pem"), []byte("late"), 0o600); err != nil {
		t.Fatal(err)
	}

	attempt := func(h *harness.Host, i int) func(t *testing.T) {
		dock, dockPID := lan.HostAddr(i), strconv.Itoa(docks[i].Pid())
		return func(t *testing.T) {
			// The control: the pod's root reads its own files and runs
			// python.
			h.MustPodctl("exec", "intruder", "--", "sh", "-c", "cat /etc/hostname && python3 -c 'pass'")
			for _, at := range escapeAttempts {
				cmd := strings.NewReplacer("PKI", pki, "ROOT", h.Root, "DOCKPID", dockPID, "DOCK", dock).Replace(at.cmd)
				if r := h.Podctl("exec", "intruder", "--", "sh", "-c", cmd); r.Code == 0 {
					t.Errorf("a pod could %s (%s): %s", at.what, cmd, r.Stdout)
				}
			}
		}
	}
	t.Run("created", attempt(a, 0))
	a.MustPodctl("checkpoint", "intruder")
	a.MustPodctl("restore", "intruder")
	t.Run("restored", attempt(a, 0))
	a.MustPodctl("migrate", "intruder", "--to", lan.DockAddr(1), "--pki", pki)
	t.Run("migrated", attempt(b, 1))

	// --privileged lifts the confinement, and no dock takes such a pod.
	a.MustPodctl("create", "--name", "root", "--privileged", "--", "sleep", "100000")
	status := a.MustPodctl("exec", "root", "--", "grep", "-E", "^(Seccomp|NoNewPrivs|CapEff):", "/proc/self/status")
	var capEff uint64
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			capEff, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	const capSysAdmin = 21
	if !strings.Contains(status, "Seccomp:\t0") || !strings.Contains(status, "NoNewPrivs:\t0") || capEff&(1<<capSysAdmin) == 0 {
		t.Errorf("a privileged pod is confined: %s", status)
	}
	r := a.Podctl("migrate", "root", "--to", lan.DockAddr(1), "--pki", pki)
	if r.Code == 0 || lines(r.Stderr) != 1 || !strings.Contains(r.Stderr, "privileged") {
		t.Errorf("migrate a privileged pod: exit %d, stderr %q; want a refusal saying why", r.Code, r.Stderr)
	}
	if p := a.Inspect("root"); p.Status != "running" {
		t.Errorf("the privileged pod is %s after the refusal", p.Status)
	}
}
