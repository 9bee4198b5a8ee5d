package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podctl/podctl/migrate"
	"github.com/podctl/podctl/test/harness"
)

// Checkpoint, restore and migration benchmarks. Run them with
//
//	go test -run NONE -bench 'Checkpoint|Migrate' -benchtime 1x ./test/
//
// Each one repeats its measurement cbReps times per b.N (so cbReps times
// with -benchtime 1x) and reports medians with b.ReportMetric, plus a
// table of them with b.Logf.

// cbReps is how many times each benchmark measures per b.N.
const cbReps = 5

// cbMem256 holds 256 MiB, every 4 KiB page written (resident, non-zero),
// and creates /tmp/ready once it has.
var cbMem256 = memoryHog(256)

// memoryHog is a Python program that holds mib MiB, every 4 KiB page
// written (resident, non-zero), and creates /tmp/ready once it has.
func memoryHog(mib int) string {
	return fmt.Sprintf(`import time
b = bytearray(%d << 20)
b[::4096] = b"\x01" * (len(b) // 4096)
open("/tmp/ready", "w").close()
while True:
    time.sleep(1)
`, mib)
}

// cbNginxConf is a minimal nginx configuration: one worker, everything
// it writes under /tmp, serving /tmp/www on port 80. The worker runs as
// root: CRIU must read every process's rlimits, and prlimit(2) on a
// process of another user needs CAP_SYS_RESOURCE, which the test machines
// lack (with nginx's default "nobody" worker both podctl checkpoint and
// criu dump fail with "Can't get rlimit 0: Operation not permitted").
const cbNginxConf = `user root;
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path /tmp/nginx-body;
  proxy_temp_path /tmp/nginx-proxy;
  fastcgi_temp_path /tmp/nginx-fastcgi;
  uwsgi_temp_path /tmp/nginx-uwsgi;
  scgi_temp_path /tmp/nginx-scgi;
  server { listen 80; root /tmp/www; }
}
`

// cbWorkload is a pod to benchmark.
type cbWorkload struct {
	name string
	// create is what follows `podctl create --name NAME`.
	create []string
	// http: the pod serves HTTP on port 80 and is kept busy by an
	// httpload.py client while it is measured.
	http bool
	// ready, if set, is a file the pod writes once it is set up.
	ready string
	// wait, if set, waits until the pod is set up.
	wait func(tb testing.TB, h *harness.Host, name string)
}

func cbWorkloads() map[string]cbWorkload {
	return map[string]cbWorkload{
		"idle":   {name: "idle", create: []string{"--", "sh", "-c", "while true; do sleep 1; done"}},
		"mem256": {name: "mem256", create: []string{"--", "python3", "-c", cbMem256}, ready: "/tmp/ready"},
		"nginx": {name: "nginx", http: true, create: []string{"--env", "NGINX_CONF=" + cbNginxConf, "--", "sh", "-c",
			`mkdir -p /tmp/www && echo hello from nginx > /tmp/www/index.html && printf '%s' "$NGINX_CONF" > /tmp/nginx.conf && exec nginx -c /tmp/nginx.conf -g 'daemon off;'`}},
	}
}

func cbRequireNginx(b *testing.B) {
	harness.NeedTool(b, "nginx", "nginx")
}

// ---------------------------------------------------------------------
// BenchmarkCheckpointRestore

// BenchmarkCheckpointRestore compares podctl checkpoint and restore with
// CRIU alone on the same kind of pod, in the same run:
//
//   - pod A: `podctl checkpoint --json A` (archive kept in the pod's
//     directory, pod gone) then `podctl restore --json A`, cbReps times;
//     the timings are podctl's own (its --json output); then cbReps
//     `podctl checkpoint --leave-running -o FILE --json A` (lr-*);
//   - pod B, created the same way: `criu dump` of its process tree with
//     the fewest options that work (see cbRawPod.dump), which kills it, then
//     `criu restore -d` of those images (cbRawPod.restore), cbReps times,
//     each timed around the criu process (started through nsenter, which
//     adds a few milliseconds); finally the restored tree is killed and B
//     removed with podctl rm -f.
func BenchmarkCheckpointRestore(b *testing.B) {
	harness.RequireRoot(b)
	harness.NeedTool(b, "criu", "criu")
	var rows []cbCkptRow
	wls := cbWorkloads()
	for _, name := range []string{"idle", "mem256", "nginx"} {
		wl := wls[name]
		b.Run(name, func(b *testing.B) {
			if wl.http {
				cbRequireNginx(b)
			}
			row := cbCheckpointRestore(b, wl)
			rows = append(rows, row)
			b.Logf("\n%s", cbCkptTable([]cbCkptRow{row}))
		})
	}
	if len(rows) > 1 {
		cbSummary(b, "medians of %d runs each (ms; ratio = podctl / criu):\n%s", cbReps*b.N, cbCkptTable(rows))
	}
}

// cbCkptRow is one workload's medians.
type cbCkptRow struct {
	name                                     string
	ckpt, frozen, dump, restore, restoreStep float64
	// lrCkpt and lrFrozen are a --leave-running checkpoint's.
	lrCkpt, lrFrozen      float64
	criuDump, criuRestore float64
	archiveMiB, imagesMiB float64
	httpOK, httpErrors    int
}

func cbCkptTable(rows []cbCkptRow) string {
	var s strings.Builder
	fmt.Fprintf(&s, "%-8s %10s %10s %10s %10s %10s %10s | %10s %10s | %6s %6s | %8s %8s\n",
		"workload", "pod-ckpt", "pod-frozen", "pod-dump", "pod-rest", "lr-ckpt", "lr-frozen", "criu-dump", "criu-rest", "c/c", "r/r", "arch-MiB", "img-MiB")
	for _, r := range rows {
		fmt.Fprintf(&s, "%-8s %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f | %10.1f %10.1f | %6.2f %6.2f | %8.1f %8.1f\n",
			r.name, r.ckpt, r.frozen, r.dump, r.restore, r.lrCkpt, r.lrFrozen, r.criuDump, r.criuRestore,
			r.ckpt/r.criuDump, r.restore/r.criuRestore, r.archiveMiB, r.imagesMiB)
	}
	return s.String()
}

// cbCkptOut is `podctl checkpoint --json` and `podctl restore --json`.
type cbCkptOut struct {
	Bytes   int64 `json:"bytes"`
	Timings struct {
		Frozen  time.Duration `json:"frozenNs"`
		Dump    time.Duration `json:"dumpNs"`
		Restore time.Duration `json:"restoreNs"`
		Total   time.Duration `json:"totalNs"`
	} `json:"timings"`
}

func cbCheckpointRestore(b *testing.B, wl cbWorkload) cbCkptRow {
	h := newHost(b)
	reps := cbReps * b.N
	var ckpt, frozen, dump, restore, restoreStep, archive []float64

	// podctl on pod A.
	a := wl.name + "-a"
	cbCreate(b, h, a, wl)
	var load *cbHTTPLoad
	if wl.http {
		load = cbStartHTTPLoad(b, h.Command, h.Inspect(a).Endpoint.IP)
		load.advance(b, 5)
	}
	for i := 0; i < reps; i++ {
		var c, r cbCkptOut
		cbJSON(b, h.MustPodctl("checkpoint", "--json", a), &c)
		if p := h.Inspect(a); p.Status != "checkpointed" {
			b.Fatalf("%s after checkpoint: %s", a, p.Status)
		}
		cbJSON(b, h.MustPodctl("restore", "--json", a), &r)
		if p := h.Inspect(a); p.Status != "running" {
			b.Fatalf("%s after restore: %s", a, p.Status)
		}
		if load != nil {
			load.advance(b, 5) // it serves again
		}
		ckpt = append(ckpt, cbMs(c.Timings.Total))
		frozen = append(frozen, cbMs(c.Timings.Frozen))
		dump = append(dump, cbMs(c.Timings.Dump))
		archive = append(archive, float64(c.Bytes)/(1<<20))
		restore = append(restore, cbMs(r.Timings.Total))
		restoreStep = append(restoreStep, cbMs(r.Timings.Restore))
	}
	// --leave-running: the pod resumes as soon as its writable layer is
	// read, before the archive is finished and synced.
	var lrCkpt, lrFrozen []float64
	for i := 0; i < reps; i++ {
		var c cbCkptOut
		cbJSON(b, h.MustPodctl("checkpoint", "--json", "--leave-running", "-o", filepath.Join(b.TempDir(), "lr.tar.zst"), a), &c)
		if p := h.Inspect(a); p.Status != "running" {
			b.Fatalf("%s after checkpoint --leave-running: %s", a, p.Status)
		}
		lrCkpt = append(lrCkpt, cbMs(c.Timings.Total))
		lrFrozen = append(lrFrozen, cbMs(c.Timings.Frozen))
	}
	var httpOK, httpErrors int
	if load != nil {
		httpOK, httpErrors = load.finish(b)
	}
	h.MustPodctl("rm", "-f", a)

	// CRIU alone on pod B.
	bn := wl.name + "-b"
	cbCreate(b, h, bn, wl)
	raw := cbNewRawPod(b, h, bn)
	if wl.http {
		load = cbStartHTTPLoad(b, h.Command, raw.ip)
		load.advance(b, 5)
	}
	var criuDump, criuRestore, images []float64
	for i := 0; i < reps; i++ {
		dir := filepath.Join(b.TempDir(), "images")
		if err := os.Mkdir(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		criuDump = append(criuDump, cbMs(raw.dump(b, dir)))
		images = append(images, float64(cbDirBytes(dir))/(1<<20))
		criuRestore = append(criuRestore, cbMs(raw.restore(b, dir)))
		// As podctl does with its own images once they are archived.
		os.RemoveAll(dir)
		if load != nil {
			load.advance(b, 5)
		}
	}
	if load != nil {
		ok, errs := load.finish(b)
		httpOK, httpErrors = httpOK+ok, httpErrors+errs
	}
	raw.remove(b)

	row := cbCkptRow{name: wl.name,
		ckpt: cbMedian(ckpt), frozen: cbMedian(frozen), dump: cbMedian(dump),
		lrCkpt: cbMedian(lrCkpt), lrFrozen: cbMedian(lrFrozen),
		restore: cbMedian(restore), restoreStep: cbMedian(restoreStep),
		criuDump: cbMedian(criuDump), criuRestore: cbMedian(criuRestore),
		archiveMiB: cbMedian(archive), imagesMiB: cbMedian(images),
		httpOK: httpOK, httpErrors: httpErrors}
	b.ReportMetric(row.ckpt, "podctl-ckpt-ms")
	b.ReportMetric(row.frozen, "podctl-frozen-ms")
	b.ReportMetric(row.dump, "podctl-dump-ms")
	b.ReportMetric(row.lrCkpt, "podctl-lr-ckpt-ms")
	b.ReportMetric(row.lrFrozen, "podctl-lr-frozen-ms")
	b.ReportMetric(row.restore, "podctl-restore-ms")
	b.ReportMetric(row.restoreStep, "podctl-restore-step-ms")
	b.ReportMetric(row.criuDump, "criu-dump-ms")
	b.ReportMetric(row.criuRestore, "criu-restore-ms")
	b.ReportMetric(row.ckpt/row.criuDump, "ckpt-vs-criu-ratio")
	b.ReportMetric(row.restore/row.criuRestore, "restore-vs-criu-ratio")
	b.ReportMetric(row.archiveMiB, "archive-MiB")
	b.ReportMetric(row.imagesMiB, "criu-images-MiB")
	b.ReportMetric(0, "ns/op")
	b.Logf("podctl ckpt ms %v frozen %v dump %v restore %v (restore step %v); criu dump ms %v restore %v",
		ckpt, frozen, dump, restore, restoreStep, criuDump, criuRestore)
	if wl.http {
		b.Logf("HTTP client: %d requests served, %d failed or timed out (while frozen or gone)", httpOK, httpErrors)
	}
	return row
}

// cbCreate creates pod name running wl in h and waits until it is set up.
func cbCreate(b *testing.B, h *harness.Host, name string, wl cbWorkload) {
	b.Helper()
	h.MustPodctl(append([]string{"create", "--name", name}, wl.create...)...)
	if wl.ready != "" {
		podFile(b, h, name, wl.ready)
	}
	if wl.wait != nil {
		wl.wait(b, h, name)
	}
}

// cbRawPod is a podctl pod whose process tree is dumped and restored with
// CRIU alone, behind podctl's back.
type cbRawPod struct {
	h    *harness.Host
	name string
	ip   string
	// pid is the host PID of the pod's init, 0 while the pod is dumped.
	pid                              int
	rootfs, hostVeth, bridge, cgroup string
	// init is the pod's init binary, the source of its external mount.
	init string
}

func cbNewRawPod(b *testing.B, h *harness.Host, name string) *cbRawPod {
	b.Helper()
	out := h.MustPodctl("inspect", name)
	var m struct {
		Network struct {
			Bridge string `json:"bridge"`
		} `json:"network"`
	}
	cbJSON(b, out, &m)
	p := h.Inspect(name)
	r := &cbRawPod{h: h, name: name, ip: p.Endpoint.IP, pid: p.InitPID, rootfs: filepath.Join(p.Dir, "rootfs"),
		hostVeth: p.Endpoint.HostVeth, bridge: m.Network.Bridge, cgroup: p.CgroupPath, init: filepath.Join(h.Root, "init", p.Init)}
	if r.pid == 0 || r.hostVeth == "" || r.bridge == "" || r.cgroup == "" || p.Init == "" {
		b.Fatalf("pod %s: init PID %d, host veth %q, bridge %q, cgroup %q, init %q", name, r.pid, r.hostVeth, r.bridge, r.cgroup, p.Init)
	}
	// Kills what CRIU restored if the benchmark stops half way; runs
	// before the host's own cleanup (registered earlier) removes the pod.
	b.Cleanup(func() { r.kill(b) })
	return r
}

// dump runs
//
//	criu dump -t PID -D DIR -o dump.log \
//	  --external 'mnt[/.podctl/init]:init' --tcp-established --skip-in-flight
//
// in the host's network namespace and returns how long it took. These are
// the fewest options that dump all three workloads: the bind mount of
// podctl's init binary must be declared external ("doesn't have a proper
// root mount" otherwise); nginx, busy with a client, has established
// connections (--tcp-established) and, now and then, connections not yet
// accepted ("In-flight connection" without --skip-in-flight). Everything
// else is CRIU's default: network lock with iptables, cgroups dumped
// ("soft"), log level 2 (podctl's CRIU runs at the 4 libcontainer asks
// for: see virtns.criuConfigLabel), tasks killed after the dump.
func (r *cbRawPod) dump(b *testing.B, dir string) time.Duration {
	b.Helper()
	d := cbRunCRIU(b, r.h, dir, "dump.log", "dump", "-t", strconv.Itoa(r.pid), "-D", dir, "-o", "dump.log",
		"--external", "mnt[/.podctl/init]:init", "--tcp-established", "--skip-in-flight")
	r.pid = 0
	// The first time, the namespace is podctl's, kept by its bind mount in
	// the pod's directory: drop that, since raw CRIU dumped the namespace
	// and will recreate it. The pod's network namespace goes, and its veth
	// pair with it, some time after its last process: the restore
	// recreates the host end under the same name.
	r.h.Run("umount", "-l", filepath.Join(filepath.Dir(r.rootfs), "netns"))
	harness.Eventually(b, 20*time.Second, func() error {
		if res := r.h.Run("ip", "link", "show", r.hostVeth); res.Code == 0 {
			return fmt.Errorf("%s still exists after the dump", r.hostVeth)
		}
		return nil
	})
	return d
}

// restore runs, in the host's network namespace,
//
//	criu restore -d -D DIR -o restore.log --root POD_DIR/rootfs \
//	  --external 'mnt[init]:ROOT/init/INIT' \
//	  --external 'veth[eth0]:HOST_VETH@BRIDGE' \
//	  --tcp-established --pidfile DIR/restored.pid
//
// and returns how long it took: -d leaves the restored tree running when
// criu returns. --root is the pod's overlay, still mounted (podctl does not
// know the pod was dumped); the external veth gives the pod its eth0 back,
// MAC and address included, with the host end plugged into the pod
// network's bridge. (ip(8) logs "Address already assigned" while CRIU
// restores the addresses: harmless.) The restored processes go back into
// the pod's cgroup, which still exists.
func (r *cbRawPod) restore(b *testing.B, dir string) time.Duration {
	b.Helper()
	pidFile := filepath.Join(dir, "restored.pid")
	d := cbRunCRIU(b, r.h, dir, "restore.log", "restore", "-d", "-D", dir, "-o", "restore.log", "--root", r.rootfs,
		"--external", "mnt[init]:"+r.init,
		"--external", "veth[eth0]:"+r.hostVeth+"@"+r.bridge,
		"--tcp-established", "--pidfile", pidFile)
	text, err := os.ReadFile(pidFile)
	if err != nil {
		b.Fatal(err)
	}
	if r.pid, err = strconv.Atoi(strings.TrimSpace(string(text))); err != nil {
		b.Fatalf("pid file %s: %q", pidFile, text)
	}
	if !r.inPod(r.pid) {
		b.Fatalf("restored init %d is not running in cgroup %s", r.pid, r.cgroup)
	}
	return d
}

// inPod reports whether pid is a live process in the pod's cgroup.
func (r *cbRawPod) inPod(pid int) bool {
	if !cbAlive(pid) {
		return false
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	return err == nil && strings.Contains(string(cg), ":"+r.cgroup+"\n")
}

// kill SIGKILLs the restored tree (its init: the whole PID namespace goes
// with it) and waits until it is gone.
func (r *cbRawPod) kill(b *testing.B) {
	if r.pid == 0 || !r.inPod(r.pid) {
		r.pid = 0
		return
	}
	syscall.Kill(r.pid, syscall.SIGKILL)
	pid := r.pid
	r.pid = 0
	// A PID namespace's init turns zombie only once every other process
	// in it has exited; it is not this process's child, so someone else
	// reaps it.
	harness.Eventually(b, 20*time.Second, func() error {
		if cbAlive(pid) {
			return fmt.Errorf("restored init %d still running", pid)
		}
		return nil
	})
}

// remove kills the restored tree and removes the pod with podctl.
func (r *cbRawPod) remove(b *testing.B) {
	b.Helper()
	r.kill(b)
	r.h.MustPodctl("rm", "-f", r.name)
}

// cbAlive reports whether pid exists and is not a zombie.
func cbAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// cbRunCRIU runs criu with args in h's network namespace (under a
// timeout that kills it) and returns how long it ran; on failure it fails
// the benchmark with the first errors of the CRIU log dir/logName.
func cbRunCRIU(b *testing.B, h *harness.Host, dir, logName string, args ...string) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// nsenter execs criu in place: killing it on timeout kills criu.
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + h.NSPath, "--", "criu"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("criu %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), cbLogErrors(filepath.Join(dir, logName)))
	}
	return d
}

func cbLogErrors(path string) string {
	text, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var errs []string
	for _, l := range strings.Split(string(text), "\n") {
		if strings.Contains(l, "Error") && !strings.Contains(l, "RLIMIT_NOFILE") && len(errs) < 10 {
			errs = append(errs, l)
		}
	}
	return filepath.Base(path) + ":\n" + strings.Join(errs, "\n")
}

func cbDirBytes(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// ---------------------------------------------------------------------
// BenchmarkMigrate

// BenchmarkMigrate moves a pod back and forth between the two hosts of a
// LAN (host 0 → 1 → 0 ...) with `podctl migrate --json`, cbReps times, and
// reports the medians of what migrate reports. mem256 migrates with
// stop-and-copy, mem256-live with --live (post-copy); mem256-live also
// reports both downtimes side by side and their ratio (the goal: live
// downtime at most 300 ms and at least 5 times below stop-and-copy's),
// taking stop-and-copy's from mem256 of the same run, or measuring it
// itself on the same pod when mem256 did not run.
func BenchmarkMigrate(b *testing.B) {
	harness.RequireRoot(b)
	harness.NeedTool(b, "criu", "criu")
	wls := cbWorkloads()
	var rows []cbMigRow
	var stopCopyMem256 []float64 // downtimes of mem256's stop-and-copy migrations
	for _, sub := range []struct {
		name, workload string
		live           bool
	}{
		{"idle", "idle", false},
		{"mem256", "mem256", false},
		{"mem256-live", "mem256", true},
		{"nginx", "nginx", false},
	} {
		wl := wls[sub.workload]
		b.Run(sub.name, func(b *testing.B) {
			if wl.http {
				cbRequireNginx(b)
			}
			lan := harness.NewLAN(b, podctlBin, 2)
			pki := lan.PKI(b)
			for i := range lan.Hosts {
				lan.StartDock(b, i, pki)
			}
			pod := wl.name
			cbCreate(b, lan.Hosts[0], pod, wl)
			var load *cbHTTPLoad
			if wl.http {
				load = cbStartHTTPLoad(b, lan.Client, lan.Hosts[0].Inspect(pod).Endpoint.IP)
				load.advance(b, 5)
			}
			at := 0 // the host the pod is on
			migrate := func(live bool) []cbMigOut {
				var outs []cbMigOut
				for i := 0; i < cbReps*b.N; i++ {
					outs = append(outs, cbMigrateOnce(b, lan, pki, pod, at, 1-at, live))
					at = 1 - at
					if load != nil {
						load.advance(b, 5)
					}
				}
				return outs
			}
			if sub.live && stopCopyMem256 == nil {
				stopCopyMem256 = cbField(migrate(false), func(o cbMigOut) time.Duration { return o.Downtime })
			}
			outs := migrate(sub.live)
			row := cbMigRowOf(sub.name, outs)
			b.ReportMetric(row.downtime, "downtime-ms")
			b.ReportMetric(row.total, "total-ms")
			b.ReportMetric(row.freeze, "freeze-ms")
			b.ReportMetric(row.dump, "dump-ms")
			b.ReportMetric(row.transfer, "transfer-ms")
			b.ReportMetric(row.restore, "restore-ms")
			if sub.live {
				b.ReportMetric(row.postCopy, "postcopy-ms")
			}
			b.ReportMetric(row.sentMiB, "sent-MiB")
			b.ReportMetric(0, "ns/op")
			if sub.name == "mem256" {
				stopCopyMem256 = cbField(outs, func(o cbMigOut) time.Duration { return o.Downtime })
			}
			var downtimes []string
			for _, o := range outs {
				downtimes = append(downtimes, fmt.Sprintf("%.1f", cbMs(o.Downtime)))
			}
			b.Logf("downtimes (ms): %s", strings.Join(downtimes, " "))
			if sub.live {
				live, stop := row.downtime, cbMedian(stopCopyMem256)
				b.ReportMetric(live, "live-downtime-ms")
				b.ReportMetric(stop, "stop-and-copy-downtime-ms")
				b.ReportMetric(stop/live, "downtime-ratio")
				verdict := "met"
				if live > 300 || stop/live < 5 {
					verdict = "NOT met"
				}
				b.Logf("mem256 downtime: live %.1f ms, stop-and-copy %.1f ms, %.1fx lower; goal (live <= 300 ms and >= 5x lower) %s",
					live, stop, stop/live, verdict)
			}
			if load != nil {
				ok, errs := load.finish(b)
				b.Logf("HTTP client: %d requests served, %d failed or timed out", ok, errs)
			}
			rows = append(rows, row)
			b.Logf("\n%s", cbMigTable([]cbMigRow{row}))
		})
	}
	if len(rows) > 1 {
		cbSummary(b, "medians of %d migrations each (ms, MiB):\n%s", cbReps*b.N, cbMigTable(rows))
	}
}

// cbMigOut is `podctl migrate --json`.
type cbMigOut = migrate.Result

// cbMigrateOnce migrates pod from host from to host to and checks it runs
// there and nowhere else.
func cbMigrateOnce(b *testing.B, lan *harness.LAN, pki, pod string, from, to int, live bool) cbMigOut {
	b.Helper()
	args := []string{"migrate", pod, "--to", lan.DockAddr(to), "--pki", pki, "--json"}
	if live {
		args = append(args, "--live")
	}
	var o cbMigOut
	cbJSON(b, lan.Hosts[from].MustPodctl(args...), &o)
	if ps, err := lan.Hosts[from].Pods(); err != nil || len(ps) != 0 {
		b.Fatalf("host %d still has pods after migrating %s away: %+v %v", from, pod, ps, err)
	}
	if p := lan.Hosts[to].Inspect(pod); p.Status != "running" {
		b.Fatalf("%s on host %d after migration: %s", pod, to, p.Status)
	}
	return o
}

// cbMigRowOf is the medians of the migrations outs.
func cbMigRowOf(name string, outs []cbMigOut) cbMigRow {
	row := cbMigRow{name: name,
		downtime: cbMedian(cbField(outs, func(o cbMigOut) time.Duration { return o.Downtime })),
		total:    cbMedian(cbField(outs, func(o cbMigOut) time.Duration { return o.Total })),
		freeze:   cbMedian(cbField(outs, func(o cbMigOut) time.Duration { return o.Freeze })),
		dump:     cbMedian(cbField(outs, func(o cbMigOut) time.Duration { return o.Dump })),
		transfer: cbMedian(cbField(outs, func(o cbMigOut) time.Duration { return o.Transfer })),
		restore:  cbMedian(cbField(outs, func(o cbMigOut) time.Duration { return o.Restore })),
		postCopy: cbMedian(cbField(outs, func(o cbMigOut) time.Duration { return o.PostCopy })),
	}
	var sent []float64
	for _, o := range outs {
		sent = append(sent, float64(o.ArchiveBytes+o.PageBytes)/(1<<20))
	}
	row.sentMiB = cbMedian(sent)
	return row
}

type cbMigRow struct {
	name                                                                string
	downtime, total, freeze, dump, transfer, restore, postCopy, sentMiB float64
}

func cbMigTable(rows []cbMigRow) string {
	var s strings.Builder
	fmt.Fprintf(&s, "%-12s %9s %9s %9s %9s %9s %9s %9s %9s\n",
		"workload", "downtime", "total", "freeze", "dump", "transfer", "restore", "postcopy", "sent-MiB")
	for _, r := range rows {
		fmt.Fprintf(&s, "%-12s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n",
			r.name, r.downtime, r.total, r.freeze, r.dump, r.transfer, r.restore, r.postCopy, r.sentMiB)
	}
	return s.String()
}

// ---------------------------------------------------------------------
// Helpers

// cbHTTPLoad is a workloads/httpload.py client requesting a pod's port 80
// over and over.
type cbHTTPLoad struct {
	cmd            *exec.Cmd
	out            bytes.Buffer
	done           chan struct{}
	stop, progress string
}

// cbStartHTTPLoad starts the client with command (a host's or the LAN
// client namespace's Command) against ip. It is stopped when the
// benchmark ends, if finish has not stopped it before.
func cbStartHTTPLoad(b *testing.B, command func(argv ...string) *exec.Cmd, ip string) *cbHTTPLoad {
	b.Helper()
	dir := b.TempDir()
	l := &cbHTTPLoad{stop: filepath.Join(dir, "stop"), progress: filepath.Join(dir, "progress"), done: make(chan struct{})}
	l.cmd = command("python3", "-c", workload(b, "httpload.py"), ip, l.stop, l.progress)
	l.cmd.Stdout, l.cmd.Stderr = &l.out, &l.out
	if err := l.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		l.cmd.Wait()
		close(l.done)
	}()
	b.Cleanup(func() {
		os.WriteFile(l.stop, nil, 0o644)
		select {
		case <-l.done:
		case <-time.After(10 * time.Second):
			l.cmd.Process.Kill()
			<-l.done
		}
	})
	return l
}

// counts returns how many requests have succeeded and failed so far.
func (l *cbHTTPLoad) counts() (ok, errs int) {
	text, _ := os.ReadFile(l.progress)
	fmt.Sscan(string(text), &ok, &errs)
	return ok, errs
}

// advance waits until n more requests have succeeded.
func (l *cbHTTPLoad) advance(b *testing.B, n int) {
	b.Helper()
	from, _ := l.counts()
	harness.Eventually(b, 60*time.Second, func() error {
		select {
		case <-l.done:
			return fmt.Errorf("HTTP client exited: %s", l.out.String())
		default:
		}
		if ok, errs := l.counts(); ok < from+n {
			return fmt.Errorf("HTTP client at %d requests served (%d failed), want %d", ok, errs, from+n)
		}
		return nil
	})
}

// finish stops the client and returns its final counts.
func (l *cbHTTPLoad) finish(b *testing.B) (ok, errs int) {
	b.Helper()
	os.WriteFile(l.stop, nil, 0o644)
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		b.Fatalf("HTTP client does not stop")
	}
	if _, err := fmt.Sscan(l.out.String(), &ok, &errs); err != nil {
		b.Fatalf("HTTP client: %q", l.out.String())
	}
	return ok, errs
}

// cbSummary prints the table of every sub-benchmark's results: with b.Logf
// under -v, on stdout otherwise (a parent benchmark's log is shown only
// under -v).
func cbSummary(b *testing.B, format string, args ...any) {
	if testing.Verbose() {
		b.Logf(format, args...)
		return
	}
	fmt.Printf("%s summary: "+format+"\n", append([]any{b.Name()}, args...)...)
}

func cbJSON(b *testing.B, text string, v any) {
	b.Helper()
	if err := json.Unmarshal([]byte(text), v); err != nil {
		b.Fatalf("%v in %q", err, text)
	}
}

func cbMs(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func cbField(outs []cbMigOut, f func(cbMigOut) time.Duration) []float64 {
	var v []float64
	for _, o := range outs {
		v = append(v, cbMs(f(o)))
	}
	return v
}

// cbMedian is the median of v (the upper one of an even count), 0 for none.
func cbMedian(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
