//go:build linux

package doctor

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// hwbpChildEnv marks processes started from this test binary: together with
// the HWBreakpointChildArg argument it makes the binary act as the
// hardware-breakpoint probe child, the way podctl does for `podctl
// _hwbp-child`.
const hwbpChildEnv = "PODCTL_DOCTOR_TEST_HWBP_CHILD"

// hwbpChildOffMain, as the value of hwbpChildEnv, makes the probe child
// run HWBreakpointChild on a thread other than the main thread.
const hwbpChildOffMain = "off-main-thread"

func init() {
	// What podctl's main package does in its init: lock the main goroutine
	// to the main thread when running as the probe child.
	if v := os.Getenv(hwbpChildEnv); v == "1" || v == hwbpChildOffMain {
		PrepareHWBreakpointChild(os.Args)
	}
}

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == HWBreakpointChildArg {
		switch os.Getenv(hwbpChildEnv) {
		case "1":
			HWBreakpointChild() // never returns
		case hwbpChildOffMain:
			// The main goroutine keeps the main thread locked, so the
			// probe loop must run on another thread.
			go HWBreakpointChild()
			select {}
		}
	}
	// Probe children started from the tests run this binary as their child.
	if err := os.Setenv(hwbpChildEnv, "1"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

func sampleReport() Report {
	return Report{Checks: []Check{
		{Name: "privileges: root", Required: true, Status: StatusOK, Detail: "euid 0"},
		{Name: "criu: version", Required: true, Status: StatusMissing, Detail: "criu not found\non PATH", Fix: "run `make deps`"},
		{Name: "kernel: soft-dirty tracking", Status: StatusInfo, Detail: "not available: live migration uses post-copy (lazy pages)"},
		{Name: "kernel: userfaultfd", Status: StatusWarn, Detail: "userfaultfd(2):\tENOSYS", Fix: "enable it"},
	}}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("got %d lines, want header + 4:\n%s", len(lines), buf.String())
	}
	header := lines[0]
	if got := strings.Fields(header); !slices.Equal(got, []string{"CHECK", "STATUS", "DETAIL", "FIX"}) {
		t.Fatalf("header = %q", header)
	}
	statusCol := strings.Index(header, "STATUS")
	detailCol := strings.Index(header, "DETAIL")
	fixCol := strings.Index(header, "FIX")
	for i, c := range sampleReport().Checks {
		line := lines[i+1]
		if !strings.HasPrefix(line, c.Name+" ") {
			t.Errorf("row %d = %q, want it to start with the name %q", i, line, c.Name)
		}
		if got := strings.Fields(line[statusCol:])[0]; got != string(c.Status) {
			t.Errorf("row %d: status column = %q, want %q", i, got, c.Status)
		}
		if !strings.HasPrefix(line[detailCol:], oneLine(c.Detail)) {
			t.Errorf("row %d: detail column = %q, want %q", i, line[detailCol:], oneLine(c.Detail))
		}
		if c.Fix != "" && strings.TrimSpace(line[fixCol:]) != c.Fix {
			t.Errorf("row %d: fix column = %q, want %q", i, line[fixCol:], c.Fix)
		}
		if strings.Contains(line, "\t") {
			t.Errorf("row %d contains a tab: %q", i, line)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Checks []map[string]any `json:"checks"`
	}
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatalf("invalid JSON %q: %v", buf.String(), err)
	}
	want := sampleReport().Checks
	if len(raw.Checks) != len(want) {
		t.Fatalf("got %d checks, want %d", len(raw.Checks), len(want))
	}
	for i, c := range raw.Checks {
		for _, k := range []string{"name", "required", "status", "detail"} {
			if _, ok := c[k]; !ok {
				t.Errorf("check %d lacks %q: %v", i, k, c)
			}
		}
		_, hasFix := c["fix"]
		if hasFix != (want[i].Fix != "") {
			t.Errorf("check %d: fix present = %v, want %v (fix is omitempty)", i, hasFix, want[i].Fix != "")
		}
		if c["name"] != want[i].Name || c["status"] != string(want[i].Status) || c["required"] != want[i].Required {
			t.Errorf("check %d = %v, want %+v", i, c, want[i])
		}
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Checks, want) {
		t.Errorf("round trip = %+v, want %+v", back.Checks, want)
	}

	buf.Reset()
	if err := (Report{}).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(strings.Fields(buf.String()), ""); got != `{"checks":[]}` {
		t.Errorf("empty report = %s, want {\"checks\": []}", buf.String())
	}
}

func TestOK(t *testing.T) {
	tests := []struct {
		name   string
		checks []Check
		want   bool
	}{
		{"empty", nil, true},
		{"all ok", []Check{{Required: true, Status: StatusOK}, {Status: StatusOK}}, true},
		{"optional warn and info", []Check{{Required: true, Status: StatusOK}, {Status: StatusWarn}, {Status: StatusInfo}}, true},
		{"required missing", []Check{{Required: true, Status: StatusOK}, {Required: true, Status: StatusMissing}}, false},
		{"required warn", []Check{{Required: true, Status: StatusWarn}}, false},
		{"required info", []Check{{Required: true, Status: StatusInfo}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Report{Checks: tt.checks}).OK(); got != tt.want {
				t.Errorf("OK() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseCRIUVersion(t *testing.T) {
	tests := []struct {
		out     string
		want    criuVersion
		wantErr bool
		tooOld  bool
	}{
		{out: "Version: 4.2.1\n", want: criuVersion{4, 2, 1}},
		{out: "Version: 4.2.1\nGitID: v4.2.1\n", want: criuVersion{4, 2, 1}},
		{out: "Version: 4.2\n", want: criuVersion{4, 2, 0}},
		{out: "Version: 4.1.1\n", want: criuVersion{4, 1, 1}, tooOld: true},
		{out: "Version: 3.17", want: criuVersion{3, 17, 0}, tooOld: true},
		{out: "Version: 3.17.1\n", want: criuVersion{3, 17, 1}, tooOld: true},
		{out: "Version: 10.0\n", want: criuVersion{10, 0, 0}},
		{out: "Warn: something\n  Version:   4.3-rc1  \n", want: criuVersion{4, 3, 0}},
		{out: "garbage", wantErr: true},
		{out: "", wantErr: true},
		{out: "Version:\n", wantErr: true},
		{out: "Version: 4\n", wantErr: true},
		{out: "Version: four.two\n", wantErr: true},
		{out: "Version: 4.x.1\n", wantErr: true},
		{out: "Version: 4.2.1.7\n", wantErr: true},
		{out: "criu: command not found\n", wantErr: true},
	}
	minimum := criuVersion{Major: criuMinMajor, Minor: criuMinMinor}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.out), func(t *testing.T) {
			got, err := parseCRIUVersion(tt.out)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseCRIUVersion = %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("parseCRIUVersion = %v, want %v", got, tt.want)
			}
			if old := got.Less(minimum); old != tt.tooOld {
				t.Errorf("%v.Less(%v) = %v, want %v", got, minimum, old, tt.tooOld)
			}
		})
	}
}

func TestCRIUWarnings(t *testing.T) {
	out := "Warn  (criu/cr-check.c:1343): Hardware breakpoints don't seem to work\nLooks good.\n"
	if got := criuWarnings(out); !slices.Equal(got, []string{"Hardware breakpoints don't seem to work"}) {
		t.Errorf("criuWarnings = %q", got)
	}
}

// writeScript writes an executable shell script and returns its path.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckCRIU runs the CRIU checks against fake criu binaries.
func TestCheckCRIU(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name        string
		script      string
		wantVersion Status
		wantCheck   Status
		wantDetail  string // substring of the version check's detail
	}{
		{
			name: "good",
			script: `case "$1" in
--version) echo "Version: 4.2.1"; echo "GitID: v4.2.1";;
check) echo "Warn  (criu/cr-check.c:1343): Hardware breakpoints don't seem to work" >&2; echo "Looks good.";;
esac`,
			wantVersion: StatusOK, wantCheck: StatusOK, wantDetail: "4.2.1",
		},
		{
			name: "old",
			script: `case "$1" in
--version) echo "Version: 3.17";;
check) echo "Error (criu/vdso.c:1): vdso: Unexpected rt vDSO area bounds" >&2; exit 1;;
esac`,
			wantVersion: StatusMissing, wantCheck: StatusMissing, wantDetail: "need >= 4.2",
		},
		{
			name:        "garbage",
			script:      "echo hello; exit 0\n",
			wantVersion: StatusMissing, wantCheck: StatusMissing, wantDetail: "no \"Version:\" line",
		},
		{
			name:        "hangs",
			script:      "exec sleep 60\n",
			wantVersion: StatusMissing, wantCheck: StatusMissing, wantDetail: "killed after",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeScript(t, dir, "criu-"+tt.name, tt.script)
			r := newRunner(Options{CRIUPath: path})
			r.cmdTimeout = 500 * time.Millisecond
			start := time.Now()
			checks := r.checkCRIU(context.Background())
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("checkCRIU took %v; the time limit did not kill criu", elapsed)
			}
			if len(checks) != 2 {
				t.Fatalf("got %d checks, want 2: %+v", len(checks), checks)
			}
			v, c := checks[0], checks[1]
			t.Logf("%+v\n%+v", v, c)
			if v.Status != tt.wantVersion || !strings.Contains(v.Detail, tt.wantDetail) {
				t.Errorf("version check = %+v, want status %s and detail containing %q", v, tt.wantVersion, tt.wantDetail)
			}
			if c.Status != tt.wantCheck {
				t.Errorf("criu check = %+v, want status %s", c, tt.wantCheck)
			}
			for _, ch := range checks {
				if !ch.Required {
					t.Errorf("%s is not required", ch.Name)
				}
				if ch.Status != StatusOK && !strings.Contains(ch.Fix, "make deps") {
					t.Errorf("%s: fix = %q, want it to mention make deps", ch.Name, ch.Fix)
				}
			}
		})
	}

	t.Run("not found", func(t *testing.T) {
		r := newRunner(Options{CRIUPath: filepath.Join(dir, "no-such-criu")})
		checks := r.checkCRIU(context.Background())
		if len(checks) != 2 || checks[0].Status != StatusMissing || checks[1].Status != StatusMissing {
			t.Fatalf("checks = %+v, want two missing", checks)
		}
	})
}

func TestRunProbeRecoversPanics(t *testing.T) {
	got := runProbe(context.Background(), probe{
		name: "boom", required: true,
		run: func(context.Context) []Check { panic("kaboom") },
	})
	if len(got) != 1 || got[0].Name != "boom" || got[0].Status != StatusMissing || !strings.Contains(got[0].Detail, "kaboom") {
		t.Errorf("runProbe = %+v, want one missing check mentioning the panic", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got = runProbe(ctx, probe{name: "late", run: func(context.Context) []Check { t.Error("ran"); return nil }})
	if len(got) != 1 || got[0].Status != StatusWarn {
		t.Errorf("runProbe(canceled) = %+v, want one warn check", got)
	}
}

func TestRunCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	rep := Run(ctx, Options{})
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Run with a canceled context took %v", elapsed)
	}
	if rep.OK() {
		t.Error("OK() = true after a canceled run")
	}
	if len(rep.Checks) == 0 {
		t.Fatal("no checks")
	}
	for _, c := range rep.Checks {
		if c.Status == StatusOK || !strings.Contains(c.Detail, "canceled") {
			t.Errorf("%+v, want a failed check saying it was canceled", c)
		}
	}
}

func TestParseCgroupFiles(t *testing.T) {
	mountinfo := `25 30 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
31 25 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
32 25 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:16 - cgroup cgroup rw,cpu,cpuacct
33 25 0:31 / /sys/fs/cgroup/freezer rw,nosuid - cgroup cgroup rw,freezer
`
	mounts, err := parseV1CgroupMounts(strings.NewReader(mountinfo))
	if err != nil {
		t.Fatal(err)
	}
	for c, want := range map[string]string{
		"memory":  "/sys/fs/cgroup/memory",
		"cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
		"freezer": "/sys/fs/cgroup/freezer",
	} {
		if mounts[c] != want {
			t.Errorf("mount of %s = %q, want %q", c, mounts[c], want)
		}
	}
	if _, ok := mounts["pids"]; ok {
		t.Errorf("pids reported mounted: %v", mounts)
	}

	procCgroups := "#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t4\t8\t1\npids\t0\t1\t0\n"
	enabled, err := parseProcCgroups(strings.NewReader(procCgroups))
	if err != nil {
		t.Fatal(err)
	}
	v := &v1Controllers{mounts: mounts, enabled: enabled}
	if _, err := v.find("memory"); err != nil {
		t.Errorf("memory: %v", err)
	}
	if _, err := v.find("pids"); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("pids: err = %v, want disabled", err)
	}
	if _, err := v.find("hugetlb"); err == nil || !strings.Contains(err.Error(), "not in /proc/cgroups") {
		t.Errorf("hugetlb: err = %v, want not built in", err)
	}
	v.enabled["pids"] = true
	if _, err := v.find("pids"); err == nil || !strings.Contains(err.Error(), "no cgroup hierarchy mounted") {
		t.Errorf("pids: err = %v, want not mounted", err)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (euid 0) to probe namespaces, links, nf_tables and CRIU")
	}
}

// hostLinks returns "index:name:type" of every link in this test's network
// namespace.
func hostLinks(t *testing.T) []string {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatalf("list links: %v", err)
	}
	var out []string
	for _, l := range links {
		out = append(out, fmt.Sprintf("%d:%s:%s", l.Attrs().Index, l.Attrs().Name, l.Type()))
	}
	slices.Sort(out)
	return out
}

// TestRunAsRoot runs every check for real on this machine.
func TestRunAsRoot(t *testing.T) {
	requireRoot(t)
	runtime.LockOSThread() // hostLinks must see the same netns before and after
	defer runtime.UnlockOSThread()
	before := hostLinks(t)

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep := Run(ctx, Options{SelfExe: self})

	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("report (OK=%v):\n%s", rep.OK(), table.String())

	if after := hostLinks(t); !slices.Equal(before, after) {
		t.Errorf("host links changed:\nbefore %v\nafter  %v", before, after)
	}
	if leftovers := childProcesses(t); len(leftovers) > 0 {
		t.Errorf("child processes left behind: %v", leftovers)
	}

	byName := make(map[string]Check)
	for _, c := range rep.Checks {
		if _, dup := byName[c.Name]; dup {
			t.Errorf("duplicate check %q", c.Name)
		}
		byName[c.Name] = c
		switch {
		case c.Name == "" || c.Detail == "":
			t.Errorf("check without name or detail: %+v", c)
		case c.Required && c.Status != StatusOK && c.Status != StatusMissing:
			t.Errorf("required check %q has status %q", c.Name, c.Status)
		case !c.Required && c.Status == StatusMissing:
			t.Errorf("optional check %q has status missing", c.Name)
		}
	}

	// This machine's kernel has all of these (see ENVIRONMENT.md).
	for _, name := range []string{
		"privileges: root",
		"kernel: pid namespace", "kernel: net namespace", "kernel: mnt namespace",
		"kernel: uts namespace", "kernel: ipc namespace",
		"kernel: overlayfs", "kernel: nf_tables", "kernel: veth", "kernel: bridge",
		"kernel: checkpoint/restore",
		"cgroups: layout", "cgroups: memory controller", "cgroups: pids controller", "cgroups: freezer controller",
	} {
		c, ok := byName[name]
		if !ok {
			t.Errorf("no check %q", name)
			continue
		}
		if !c.Required || c.Status != StatusOK {
			t.Errorf("%q = %+v, want a required check with status ok", name, c)
		}
	}
	for _, name := range []string{"kernel: time namespace", "kernel: user namespace", "kernel: cgroup namespace"} {
		if c := byName[name]; c.Required || c.Status != StatusInfo {
			t.Errorf("%q = %+v, want an optional info check", name, c)
		}
	}
	for _, name := range []string{"criu: version", "criu: check"} {
		if c, ok := byName[name]; !ok || !c.Required {
			t.Errorf("%q = %+v, want a required check", name, c)
		}
	}

	// Cross-check soft-dirty against the kernel configuration, when known.
	sd := byName["kernel: soft-dirty tracking"]
	if sd.Required || (sd.Status != StatusInfo && sd.Status != StatusWarn) {
		t.Errorf("soft-dirty = %+v, want optional info", sd)
	}
	if set, ok := kernelConfig(t, "CONFIG_MEM_SOFT_DIRTY"); ok {
		want := "not available: live migration uses post-copy (lazy pages)"
		if set {
			want = "available: pre-copy migration (criu pre-dump) possible"
		}
		if sd.Detail != want {
			t.Errorf("soft-dirty detail = %q, want %q (CONFIG_MEM_SOFT_DIRTY set: %v)", sd.Detail, want, set)
		}
	}
	if set, ok := kernelConfig(t, "CONFIG_USERFAULTFD"); ok && set {
		if c := byName["kernel: userfaultfd"]; c.Status != StatusOK {
			t.Errorf("userfaultfd = %+v, want ok with CONFIG_USERFAULTFD=y", c)
		}
	}

	hw := byName["hardware breakpoints"]
	if runtime.GOARCH == "amd64" && hw.Status != StatusInfo {
		t.Errorf("hardware breakpoints = %+v, want info", hw)
	}
}

// kernelConfig reports whether option is set (=y or =m) in /proc/config.gz;
// ok is false when the configuration is not available.
func kernelConfig(t *testing.T, option string) (set, ok bool) {
	t.Helper()
	f, err := os.Open("/proc/config.gz")
	if err != nil {
		return false, false
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("read /proc/config.gz: %v", err)
	}
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		line := sc.Text()
		if line == "# "+option+" is not set" {
			return false, true
		}
		if v, found := strings.CutPrefix(line, option+"="); found {
			return v == "y" || v == "m", true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /proc/config.gz: %v", err)
	}
	return false, true
}

// childProcesses lists the processes whose parent is this test process.
func childProcesses(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	var kids []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid ...: comm may contain spaces and parens.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(self) {
			kids = append(kids, fmt.Sprintf("%d %s", pid, s[:strings.LastIndexByte(s, ')')+1]))
		}
	}
	return kids
}

// TestThrowawayNetnsLeavesNothing creates links in a throwaway namespace
// without deleting them and checks that none shows up in the host namespace.
func TestThrowawayNetnsLeavesNothing(t *testing.T) {
	requireRoot(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := hostLinks(t)
	err := inThrowawayNetns(context.Background(), func(h *netlink.Handle) error {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = probeVeth
		if err := h.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: probeVethPeer}); err != nil {
			return err
		}
		battrs := netlink.NewLinkAttrs()
		battrs.Name = probeBridge
		return h.LinkAdd(&netlink.Bridge{LinkAttrs: battrs})
	})
	if err != nil {
		t.Fatal(err)
	}
	if after := hostLinks(t); !slices.Equal(before, after) {
		t.Errorf("host links changed:\nbefore %v\nafter  %v", before, after)
	}
	for _, name := range []string{probeVeth, probeVethPeer, probeBridge} {
		if _, err := netlink.LinkByName(name); err == nil {
			t.Errorf("%s exists in the host network namespace", name)
		}
	}

	// Errors from fn come back wrapped, and the thread still returns.
	sentinel := errors.New("sentinel")
	if err := inThrowawayNetns(context.Background(), func(*netlink.Handle) error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("err = %v, want the sentinel", err)
	}
}

// TestHWBreakpointCheck runs the hardware-breakpoint check against this
// test binary as its own probe child (see TestMain).
func TestHWBreakpointCheck(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	checks := newRunner(Options{SelfExe: self}).checkHWBreakpoints(context.Background())
	if len(checks) != 1 {
		t.Fatalf("got %+v", checks)
	}
	c := checks[0]
	t.Logf("%+v", c)
	if c.Status != StatusInfo || c.Required {
		t.Errorf("check = %+v, want optional info (the probe must run)", c)
	}
	switch {
	case runtime.GOARCH != "amd64":
		if !strings.HasPrefix(c.Detail, "n/a") {
			t.Errorf("on %s: detail = %q, want n/a", runtime.GOARCH, c.Detail)
		}
	case !strings.HasPrefix(c.Detail, "fire: ") &&
		!strings.HasPrefix(c.Detail, "do not fire (CRIU >= 4.2 copes; CRIU 4.1 needs CRIU_FAULT=130)"):
		t.Errorf("detail = %q", c.Detail)
	}
	if kids := childProcesses(t); len(kids) > 0 {
		t.Errorf("child processes left behind: %v", kids)
	}
}

func TestCheckPrivate(t *testing.T) {
	private, open := t.TempDir(), t.TempDir()
	os.Chmod(private, 0o700)
	os.Chmod(open, 0o755)
	checks := checkPrivate([]string{private, open, filepath.Join(private, "missing"), ""})
	if len(checks) != 3 {
		t.Fatalf("got %d checks, want 3: %+v", len(checks), checks)
	}
	if checks[0].Status != StatusOK || checks[2].Status != StatusOK {
		t.Errorf("a private and a missing directory: %+v", checks)
	}
	if checks[1].Status != StatusWarn || !strings.Contains(checks[1].Fix, "chmod 700 "+open) {
		t.Errorf("a directory others can read: %+v", checks[1])
	}
}
