package test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/podctl/podctl/test/harness"
)

// TestSessionReachesOnlyTheMigratedPod migrates a pod to another host's
// dock and reaches it there by the migration's session, as podctl
// compare --to does: its state, its output, its removal. A session the
// dock never saw reaches nothing, and the dock's own pod is untouched.
func TestSessionReachesOnlyTheMigratedPod(t *testing.T) {
	harness.RequireRoot(t)
	lan := harness.NewLAN(t, podctlBin, 2)
	pki := lan.PKI(t)
	a, b := lan.Hosts[0], lan.Hosts[1]
	lan.StartDock(t, 1, pki)
	createCounter(t, a, "away")

	var res struct {
		Pod, Session string
	}
	out := a.MustPodctl("migrate", "away", "--to", lan.DockAddr(1), "--pki", pki, "--json")
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Session) != 32 {
		t.Fatalf("migrate --json names no session (%v):\n%s", err, out)
	}
	// The dock's host has a pod of its own (made after the migration:
	// the two hosts lease addresses of one subnet each for itself).
	createCounter(t, b, "local")
	session := func(args ...string) harness.Result {
		return a.Podctl(append(append([]string{"session"}, args...), "--dock", lan.DockAddr(1), "--pki", pki)...)
	}

	r := session("inspect", res.Session)
	var info harness.PodInfo
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &info) != nil {
		t.Fatalf("session inspect: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
	}
	if info.Spec.Name != "away" || info.Status != "running" {
		t.Errorf("session inspect shows %s %s, want away running", info.Spec.Name, info.Status)
	}
	r = session("logs", res.Session)
	if r.Code != 0 {
		t.Fatalf("session logs: exit %d: %s", r.Code, r.Stderr)
	}
	// The counter printed at the source goes on at the dock: the log
	// is the dock's copy of the pod's.
	if n := consecutive(t, "the session's log", r.Stdout); n < 3 {
		t.Errorf("session logs: the counter is at %d, want at least 3", n)
	}

	// Nothing else is in reach: a session the dock never saw, one that
	// is no session, and no dock at all get one line each.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"inspect", strings.Repeat("ab", 16)}, 5, "no pod of session"},
		{[]string{"rm", strings.Repeat("cd", 16)}, 5, "no pod of session"},
		{[]string{"logs", "local"}, 11, "invalid session"},
	} {
		r := session(tc.args...)
		if r.Code != tc.code || !strings.Contains(r.Stderr, tc.want) || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
			t.Errorf("session %v: exit %d, %q; want exit %d and one line with %q", tc.args, r.Code, r.Stderr, tc.code, tc.want)
		}
	}
	if r := a.Podctl("session", "inspect", res.Session); r.Code != 2 || !strings.Contains(r.Stderr, "--dock ADDR is required") {
		t.Errorf("session inspect without --dock: exit %d, %q", r.Code, r.Stderr)
	}

	if r := session("rm", res.Session); r.Code != 0 {
		t.Fatalf("session rm: exit %d: %s", r.Code, r.Stderr)
	}
	if got := podNames(t, b); !strings.HasPrefix(got, "local/running/") || strings.Contains(got, "away") {
		t.Errorf("after session rm the dock's host has %q, want its own pod only", got)
	}
	if r := session("inspect", res.Session); r.Code != 5 {
		t.Errorf("session inspect after rm: exit %d, want 5 (no such pod)", r.Code)
	}
}
