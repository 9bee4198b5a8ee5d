package compare

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/podctl/podctl/virtns"
)

// rawCRIU is the papers' baseline: the native binary started on the
// host as a session of its own, dumped with `criu dump -t PID` and
// restored with `criu restore -d`, each with CRIU's default options and
// timed as a whole command.
type rawCRIU struct{ r *Runner }

func (rawCRIU) name() string { return Baseline }

func (c rawCRIU) measure(ctx context.Context, b *built, at time.Duration, run int) (map[string]float64, string, error) {
	dir := filepath.Join(c.r.Work, "criu", fmt.Sprintf("%s-%d", b.Name, run))
	images := filepath.Join(dir, "images")
	if err := os.RemoveAll(dir); err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(images, 0o755); err != nil {
		return nil, "", err
	}
	data, err := c.r.dataDir(b, Baseline, run)
	if err != nil {
		return nil, "", err
	}
	outPath := filepath.Join(dir, "stdout")
	out, err := os.Create(outPath)
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(b.native, b.Args(b.size, data)...)
	cmd.Dir = data
	cmd.Stdout, cmd.Stderr = out, out
	// CRIU dumps a process tree that is a session of its own, without a
	// terminal, as a service manager would start it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	out.Close()
	if err != nil {
		return nil, "", fmt.Errorf("start %s: %w", b.native, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	pid := cmd.Process.Pid
	if err := sleepCtx(ctx, at); err != nil {
		return nil, "", err
	}
	m := map[string]float64{}
	if rss, ok := residentBytes(pid); ok {
		m["footprint-bytes"] = float64(rss)
	}
	d, err := runTimed(ctx, "criu", "dump", "-t", strconv.Itoa(pid), "-D", images, "-o", "dump.log")
	if err != nil {
		select {
		case <-exited:
			return nil, "", errFinishedEarly
		default:
		}
		return nil, "", fmt.Errorf("criu dump: %w%s", err, virtns.CRIULogError(filepath.Join(images, "dump.log")))
	}
	m["checkpoint-ms"] = ms(d)
	<-exited
	if st, err := virtns.DumpStats(images); err == nil {
		addCRIUStats(m, st)
		m["frozen-ms"] = ms(st.Frozen)
	}
	if err := addSizes(m, images); err != nil {
		return nil, "", err
	}
	d, err = runTimed(ctx, "criu", "restore", "-D", images, "-d", "-o", "restore.log")
	if err != nil {
		return nil, "", fmt.Errorf("criu restore: %w%s", err, virtns.CRIULogError(filepath.Join(images, "restore.log")))
	}
	m["restore-ms"] = ms(d)
	if st, err := virtns.RestoreStats(images); err == nil {
		addCRIUStats(m, st)
	}
	// The restored process is no child of this one: its end is seen in
	// /proc (gone, or a zombie of a parent that does not reap).
	if err := waitGone(ctx, pid); err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		return nil, "", err
	}
	stdout, err := os.ReadFile(outPath)
	return m, string(stdout), err
}

// addCRIUStats adds what CRIU's statistics say to m (its times in
// milliseconds, its page counts).
func addCRIUStats(m map[string]float64, st *virtns.CRIUStats) {
	add := func(name string, v float64) {
		if v > 0 {
			m[name] = v
		}
	}
	add("criu-freezing-ms", ms(st.Freezing))
	add("criu-frozen-ms", ms(st.Frozen))
	add("criu-memdump-ms", ms(st.MemDump))
	add("criu-memwrite-ms", ms(st.MemWrite))
	add("criu-written-pages", float64(st.PagesWritten))
	add("criu-forking-ms", ms(st.Forking))
	add("criu-restore-ms", ms(st.Restore))
	add("criu-restored-pages", float64(st.PagesRestored))
}

// runTimed runs a whole command and times it.
func runTimed(ctx context.Context, name string, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return d, nil
}

// sleepCtx sleeps for d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitGone polls until process pid has ended.
func waitGone(ctx context.Context, pid int) error {
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil
		}
		// The state follows the command's name in brackets.
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 && strings.HasPrefix(string(b[i+1:]), " Z") {
			return nil
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
}

// residentBytes is the resident memory of process pid.
func residentBytes(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kib * 1024, err == nil
		}
	}
	return 0, false
}
