package virtns

import (
	"slices"
	"testing"
)

// TestPodConfinement checks what a pod's processes are refused, and that
// only a privileged pod is spared it.
func TestPodConfinement(t *testing.T) {
	cfg, err := PodConfig{ID: "p"}.libcontainerConfig("criu.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.NoNewPrivileges || !slices.Contains(cfg.MaskPaths, "/proc/kcore") || !slices.Contains(cfg.ReadonlyPaths, "/proc/sys") {
		t.Errorf("a pod runs without no_new_privs, masks or read-only paths: %v %v %v", cfg.NoNewPrivileges, cfg.MaskPaths, cfg.ReadonlyPaths)
	}
	if slices.Contains(cfg.Capabilities.Bounding, "CAP_SYS_ADMIN") {
		t.Error("a pod has CAP_SYS_ADMIN")
	}
	if SeccompEnforced && (cfg.Seccomp == nil || len(cfg.Seccomp.Syscalls) == 0) {
		t.Error("a pod runs without a seccomp filter")
	}

	priv, err := PodConfig{ID: "p", Privileged: true}.libcontainerConfig("criu.conf")
	if err != nil {
		t.Fatal(err)
	}
	if priv.NoNewPrivileges || priv.MaskPaths != nil || priv.ReadonlyPaths != nil || priv.Seccomp != nil {
		t.Errorf("a privileged pod is confined: %+v", priv)
	}
	for _, c := range []string{"CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_NET_ADMIN"} {
		if !slices.Contains(priv.Capabilities.Effective, c) {
			t.Errorf("a privileged pod lacks %s", c)
		}
	}
}
