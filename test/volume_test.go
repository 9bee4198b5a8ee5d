package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// volumeInfo is the part of `podctl volume inspect` the tests read.
type volumeInfo struct {
	Name       string   `json:"name"`
	ID         string   `json:"id"`
	Mountpoint string   `json:"mountpoint"`
	UsedBy     []string `json:"usedBy"`
}

// wantExit fails the test unless r exited with code and said one line
// containing want.
func wantExit(t *testing.T, what string, r harness.Result, code int, want string) {
	t.Helper()
	if r.Code != code || !strings.Contains(r.Stderr, want) || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
		t.Errorf("%s: exit %d, %q; want exit %d and one line with %q", what, r.Code, r.Stderr, code, want)
	}
}

// TestVolumes covers a pod's volumes from create to rm: a named volume
// made on first use, carried by a checkpoint and kept by rm, a host
// directory mounted read-only, what is refused (removing a volume in
// use, a restore onto another volume of the same name), and what a
// failed create or rm --volumes leaves behind.
func TestVolumes(t *testing.T) {
	h := newHost(t)
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "greeting"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.MustPodctl("create", "--name", "writer", "-v", "data:/data", "-v", hostDir+":/host:ro", "--",
		"sh", "-c", "echo written-$((6*7)) > /data/note && exec sleep infinity")
	waitFile := func(pod, path, want string) {
		t.Helper()
		harness.Eventually(t, 10*time.Second, func() error {
			r := h.Podctl("exec", pod, "--", "cat", path)
			if r.Code != 0 || r.Stdout != want {
				return fmt.Errorf("%s in %s: %q %s", path, pod, r.Stdout, r.Stderr)
			}
			return nil
		})
	}
	waitFile("writer", "/data/note", "written-42\n")
	waitFile("writer", "/host/greeting", "from the host\n")
	if r := h.Podctl("exec", "writer", "--", "touch", "/host/x"); r.Code == 0 {
		t.Error("the pod wrote into a read-only host directory")
	}
	if _, err := os.Stat(filepath.Join(hostDir, "x")); err == nil {
		t.Error("a file appeared in the read-only host directory")
	}

	var v volumeInfo
	if err := json.Unmarshal([]byte(h.MustPodctl("volume", "inspect", "data")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Name != "data" || len(v.UsedBy) != 1 || v.UsedBy[0] != "writer" || !strings.HasPrefix(v.Mountpoint, h.Root) {
		t.Errorf("volume inspect data = %+v", v)
	}
	if b, err := os.ReadFile(filepath.Join(v.Mountpoint, "note")); err != nil || string(b) != "written-42\n" {
		t.Errorf("the volume's file on the host: %q, %v", b, err)
	}
	if ls := h.MustPodctl("volume", "ls"); !strings.Contains(ls, "data") || !strings.Contains(ls, "writer") {
		t.Errorf("volume ls does not show data used by writer:\n%s", ls)
	}
	wantExit(t, "volume rm of a volume in use", h.Podctl("volume", "rm", "data"), exitConflict, "used by pod writer")

	// A checkpoint carries the volume: restored from the archive after
	// the pod and the volume are gone, the pod finds its files, and the
	// volume keeps its identity.
	archive := filepath.Join(t.TempDir(), "writer.tar.zst")
	h.MustPodctl("checkpoint", "-o", archive, "writer")
	h.MustPodctl("rm", "-f", "--volumes", "writer")
	wantExit(t, "volume inspect of a removed volume", h.Podctl("volume", "inspect", "data"), exitNotFound, "no such volume")
	h.MustPodctl("restore", archive)
	waitFile("writer", "/data/note", "written-42\n")
	var again volumeInfo
	if err := json.Unmarshal([]byte(h.MustPodctl("volume", "inspect", "data")), &again); err != nil || again.ID != v.ID {
		t.Errorf("the restored volume is %+v (%v), want id %s", again, err, v.ID)
	}
	// Another volume of the same name is not overwritten.
	h.MustPodctl("rm", "-f", "--volumes", "writer")
	h.MustPodctl("create", "--name", "other", "-v", "data:/d", "--", "true")
	wantExit(t, "a restore onto another volume of the same name", h.Podctl("restore", archive), exitConflict, "another volume named data")
	h.MustPodctl("rm", "-f", "--volumes", "other")
	h.MustPodctl("restore", archive)
	waitFile("writer", "/data/note", "written-42\n")
	wantExit(t, "volume inspect of no volume", h.Podctl("volume", "inspect", "nothing"), exitNotFound, "no such volume")
	wantExit(t, "a volume under /proc", h.Podctl("create", "--name", "bad", "-v", "x:/proc/x", "--", "true"), exitInvalidArg, "under /proc")
	wantExit(t, "a missing host directory", h.Podctl("create", "--name", "bad", "-v", hostDir+"/missing:/m", "--", "true"), exitInvalidArg, "not a directory")

	// rm keeps the volume, and the next pod sees its files.
	h.MustPodctl("rm", "-f", "writer")
	h.MustPodctl("create", "--name", "reader", "-v", "data:/srv/data:ro", "--", "sleep", "infinity")
	waitFile("reader", "/srv/data/note", "written-42\n")
	if r := h.Podctl("exec", "reader", "--", "touch", "/srv/data/x"); r.Code == 0 {
		t.Error("the pod wrote into a volume mounted read-only")
	}
	h.MustPodctl("rm", "-f", "--volumes", "reader")
	if ls := h.MustPodctl("volume", "ls", "--json"); strings.TrimSpace(ls) != "[]" {
		t.Errorf("rm --volumes left volumes: %s", ls)
	}
	if _, err := os.Stat(v.Mountpoint); !os.IsNotExist(err) {
		t.Errorf("rm --volumes left the volume's files: %v", err)
	}

	// A create that fails takes the volume it made with it, and leaves
	// one it found.
	h.MustPodctl("create", "--name", "keeper", "-v", "kept:/k", "--", "sleep", "infinity")
	wantExit(t, "create with a missing command", h.Podctl("create", "--name", "failed", "-v", "fresh:/f", "-v", "kept:/k", "--", "/no/such/command"), exitNotFoundCmd, "not found")
	var vs []volumeInfo
	if err := json.Unmarshal([]byte(h.MustPodctl("volume", "ls", "--json")), &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Name != "kept" {
		t.Errorf("after a failed create the volumes are %+v, want only kept", vs)
	}
	// rm --volumes leaves a volume another pod mounts.
	h.MustPodctl("create", "--name", "sharer", "-v", "kept:/k", "--", "sleep", "infinity")
	h.MustPodctl("rm", "-f", "--volumes", "keeper")
	if err := json.Unmarshal([]byte(h.MustPodctl("volume", "inspect", "kept")), &v); err != nil || len(v.UsedBy) != 1 || v.UsedBy[0] != "sharer" {
		t.Errorf("rm --volumes of one of two pods: %+v, %v", v, err)
	}
	h.MustPodctl("rm", "-f", "sharer")
	h.MustPodctl("volume", "rm", "kept")
}

// TestMigrateCarriesVolume migrates a pod that appends to a log in its
// named volume A -> B -> A over a LAN of two hosts: at each destination
// the log is whole and goes on, with no gap, the source keeps no copy of
// the volume, and a pod sharing its volume, or mounting a host
// directory, is refused.
func TestMigrateCarriesVolume(t *testing.T) {
	harness.RequireRoot(t)
	lan := harness.NewLAN(t, podctlBin, 2)
	pki := lan.PKI(t)
	for i := range lan.Hosts {
		lan.StartDock(t, i, pki)
	}
	a, b := lan.Hosts[0], lan.Hosts[1]
	a.MustPodctl("create", "--name", "logger", "-v", "journal:/journal", "--", "sh", "-c",
		"i=$(wc -l < /journal/log 2>/dev/null || echo 0); while :; do i=$((i+1)); echo $i >> /journal/log; sleep 0.05; done")
	// lines polls until the pod's log on h has at least n lines, all of
	// them 1, 2, 3, ... without a gap, and returns how many.
	lines := func(h *harness.Host, n int) int {
		t.Helper()
		var got int
		harness.Eventually(t, 20*time.Second, func() error {
			r := h.Podctl("exec", "logger", "--", "cat", "/journal/log")
			if r.Code != 0 {
				return fmt.Errorf("cat: %s", r.Stderr)
			}
			ls := strings.Fields(r.Stdout)
			for i, l := range ls {
				if l != strconv.Itoa(i+1) {
					t.Fatalf("line %d of the log on %s is %q: a write was lost or doubled", i+1, h.Name, l)
				}
			}
			if got = len(ls); got < n {
				return fmt.Errorf("the log has %d lines, want %d", got, n)
			}
			return nil
		})
		return got
	}
	n := lines(a, 10)
	for _, hop := range []struct{ from, to int }{{0, 1}, {1, 0}} {
		from, to := lan.Hosts[hop.from], lan.Hosts[hop.to]
		from.MustPodctl("migrate", "logger", "--to", lan.DockAddr(hop.to), "--pki", pki)
		n = lines(to, n+10)
		if r := from.Podctl("volume", "inspect", "journal"); r.Code != exitNotFound {
			t.Errorf("host %d kept the volume after the pod left: exit %d %s", hop.from, r.Code, r.Stdout)
		}
		var v volumeInfo
		if err := json.Unmarshal([]byte(to.MustPodctl("volume", "inspect", "journal")), &v); err != nil || len(v.UsedBy) != 1 {
			t.Errorf("host %d's volume: %+v %v", hop.to, v, err)
		}
	}

	a.MustPodctl("create", "--name", "sharer", "-v", "journal:/j", "--", "sleep", "infinity")
	wantExit(t, "migrate of a pod sharing its volume", a.Podctl("migrate", "logger", "--to", lan.DockAddr(1), "--pki", pki), exitConflict, "shares the volume journal with pod sharer")
	a.MustPodctl("create", "--name", "hostdir", "-v", t.TempDir()+":/h", "--", "sleep", "infinity")
	wantExit(t, "migrate of a pod mounting a host directory", a.Podctl("migrate", "hostdir", "--to", lan.DockAddr(1), "--pki", pki), exitUnsupported, "mounts the host directory")
	lines(a, n+5) // the refusals left it running
	if pods, _ := b.Pods(); len(pods) != 0 {
		t.Errorf("the refused migrations left pods on host 1: %v", pods)
	}
}
