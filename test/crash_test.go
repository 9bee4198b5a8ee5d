package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/podctl/podctl/test/harness"
)

// TestCrashRecovery kills podctl (SIGKILL, through a failpoint) at every
// step of create and rm, then checks that the next command sees a
// consistent world: a pod killed mid-create is rolled back entirely, one
// killed mid-rm is removed entirely, and ps never lists a pod that does not
// exist.
func TestCrashRecovery(t *testing.T) {
	h := newHost(t)
	h.MustPodctl("create", "--name", "bystander", "-p", "18100:80", "--", "sleep", "1000")
	for _, fp := range []string{"create:reserved", "create:ports-leased", "create:mounted", "create:attached", "create:started"} {
		t.Run(fp, func(t *testing.T) {
			before := h.Snapshot()
			cmd := h.Command(h.Binary, "--root", h.Root, "create", "--name", "victim", "-p", "18101:80", "--", "sleep", "1000")
			cmd.Env = append(os.Environ(), "PODCTL_FAILPOINT="+fp)
			if r := h.RunCmd(cmd); r.Code == 0 {
				t.Fatalf("failpoint %s did not fire", fp)
			}
			victim := readManifest(t, h, "victim")
			pods, err := h.Pods()
			if err != nil {
				t.Fatal(err)
			}
			if len(pods) != 1 || pods[0].Name != "bystander" || pods[0].Status != "running" {
				t.Fatalf("after a crash in %s, ps shows %+v; want only the running bystander", fp, pods)
			}
			if left := h.Leftovers(victim); len(left) != 0 {
				t.Errorf("crash in %s left %v", fp, left)
			}
			if diff := before.Diff(h.Snapshot()); diff != "" {
				t.Errorf("crash in %s left:\n%s", fp, diff)
			}
			// The name, address and port are free again.
			h.MustPodctl("create", "--name", "victim", "-p", "18101:80", "--", "sleep", "1000")
			h.MustPodctl("rm", "-f", "victim")
		})
	}
	for _, fp := range []string{"rm:marked", "rm:torn-down"} {
		t.Run(fp, func(t *testing.T) {
			before := h.Snapshot()
			h.MustPodctl("create", "--name", "victim", "-p", "18101:80", "--", "sleep", "1000")
			victim := h.Inspect("victim")
			cmd := h.Command(h.Binary, "--root", h.Root, "rm", "-f", "victim")
			cmd.Env = append(os.Environ(), "PODCTL_FAILPOINT="+fp)
			if r := h.RunCmd(cmd); r.Code == 0 {
				t.Fatalf("failpoint %s did not fire", fp)
			}
			pods, err := h.Pods()
			if err != nil {
				t.Fatal(err)
			}
			if len(pods) != 1 || pods[0].Name != "bystander" {
				t.Fatalf("after a crash in %s, ps shows %+v; want only the bystander", fp, pods)
			}
			if left := h.Leftovers(victim); len(left) != 0 {
				t.Errorf("crash in %s left %v", fp, left)
			}
			if diff := before.Diff(h.Snapshot()); diff != "" {
				t.Errorf("crash in %s left:\n%s", fp, diff)
			}
		})
	}
}

// readManifest reads what a crashed create recorded, to know what to look
// for afterwards.
func readManifest(t *testing.T, h *harness.Host, name string) harness.PodInfo {
	t.Helper()
	dir := filepath.Join(h.Root, "pods", name)
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatalf("crashed create left no manifest: %v", err)
	}
	var p harness.PodInfo
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	p.Name, p.Dir = p.Spec.Name, dir
	return p
}
