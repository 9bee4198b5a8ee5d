package compare

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/podctl/podctl/virtns"
)

// podctlCmd is one podctl, run as a whole command: this host's podctl
// with the runner's global flags, or another ISA's under qemu-user.
type podctlCmd struct {
	// argv runs podctl; env is added to the environment.
	argv []string
	env  []string
}

// podctl is this host's podctl.
func (r *Runner) podctl() podctlCmd {
	return podctlCmd{argv: append([]string{r.Podctl}, r.Flags...)}
}

// run runs podctl with args and returns its stdout and how long the
// whole command took. Its error holds the command's own one line.
func (p podctlCmd) run(ctx context.Context, args ...string) (string, time.Duration, error) {
	return p.runInput(ctx, nil, args...)
}

// runInput is run with stdin as the command's standard input.
func (p podctlCmd) runInput(ctx context.Context, stdin io.Reader, args ...string) (string, time.Duration, error) {
	argv := append(append([]string{}, p.argv...), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return "", d, fmt.Errorf("podctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), d, nil
}

// runJSON runs podctl with args (which ask for --json) and decodes its
// output into v.
func (p podctlCmd) runJSON(ctx context.Context, v any, args ...string) (time.Duration, error) {
	out, d, err := p.run(ctx, args...)
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return d, fmt.Errorf("podctl %s: its JSON: %w", strings.Join(args, " "), err)
	}
	return d, nil
}

// podInfo is what a comparison reads of `podctl inspect`.
type podInfo struct {
	Status string `json:"status"`
	PIDs   []int  `json:"pids"`
}

// waitExited polls until pod name has exited, and returns its logs.
func (p podctlCmd) waitExited(ctx context.Context, name string) (string, error) {
	return p.waitFor(ctx, []string{"inspect", name}, []string{"logs", name})
}

// waitFor polls the podctl command inspect until the pod it shows has
// exited, and returns what the command logs prints.
func (p podctlCmd) waitFor(ctx context.Context, inspect, logs []string) (string, error) {
	for {
		var info podInfo
		if _, err := p.runJSON(ctx, &info, inspect...); err != nil {
			return "", err
		}
		if info.Status == "exited" {
			out, _, err := p.run(ctx, logs...)
			return out, err
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// runFor creates pod name with the command create, lets it run for at,
// and returns its first metric: its footprint then. The caller removes
// the pod.
func (p podctlCmd) runFor(ctx context.Context, name string, create []string, at time.Duration) (map[string]float64, error) {
	if _, _, err := p.run(ctx, create...); err != nil {
		return nil, err
	}
	return p.footprintAfter(ctx, name, at)
}

// footprintAfter waits for at and returns the footprint of pod name then,
// as a run's first metric.
func (p podctlCmd) footprintAfter(ctx context.Context, name string, at time.Duration) (map[string]float64, error) {
	if err := sleepCtx(ctx, at); err != nil {
		return nil, err
	}
	m := map[string]float64{}
	if rss, ok := p.footprint(ctx, name); ok {
		m["footprint-bytes"] = float64(rss)
	}
	return m, nil
}

// footprint is the resident memory of the largest process of pod name.
func (p podctlCmd) footprint(ctx context.Context, name string) (int64, bool) {
	var info podInfo
	if _, err := p.runJSON(ctx, &info, "inspect", name); err != nil {
		return 0, false
	}
	var most int64
	for _, pid := range info.PIDs {
		if rss, ok := residentBytes(pid); ok {
			most = max(most, rss)
		}
	}
	return most, most > 0
}

// remove removes pod name, whatever state it is in.
func (p podctlCmd) remove(name string) {
	p.run(context.Background(), "rm", "-f", name)
}

// podName is a fresh name for a pod of the comparison.
func podName(b *built, path string, run int) string {
	var r [3]byte
	rand.Read(r[:])
	return fmt.Sprintf("cmp-%s-%s-%d-%s", b.Name, path, run, hex.EncodeToString(r[:]))
}

// checkpointReport is what `podctl checkpoint --json` prints of a
// native or housed pod (pod.CheckpointResult).
type checkpointReport struct {
	Archive string `json:"archive"`
	Bytes   int64  `json:"bytes"`
	Timings struct {
		Frozen time.Duration     `json:"frozenNs"`
		CRIU   *virtns.CRIUStats `json:"criu"`
	} `json:"timings"`
}

// restoreReport is what `podctl restore --json` prints of a native or
// housed pod (pod.RestoreReport).
type restoreReport struct {
	Timings struct {
		CRIU *virtns.CRIUStats `json:"criu"`
	} `json:"timings"`
}

// podctlPod is the native binary in a pod, through `podctl checkpoint`
// and `podctl restore`.
type podctlPod struct{ r *Runner }

func (podctlPod) name() string { return PathPodctl }

func (p podctlPod) measure(ctx context.Context, b *built, at time.Duration, run int) (map[string]float64, string, error) {
	name := podName(b, "pod", run)
	return p.r.criuRun(ctx, name, nativePodCreate(b, name), at)
}

// nativePodCreate is the podctl command that runs b natively in pod name.
func nativePodCreate(b *built, name string) []string {
	return append([]string{"create", "--name", name, "--image", b.image, "--", "/" + b.Name}, b.Args(b.size, "/data")...)
}

// vesselPodCreate is the podctl command that runs b's Wasm build in
// vessel pod name, with data as its data directory.
func vesselPodCreate(b *built, name, data string) []string {
	return append([]string{"create", "--name", name, "--wasm", b.wasm, "--dir", data + ":/data", "--"}, b.Args(b.size, "/data")...)
}

// podRunTime runs the pod that create makes uninterrupted, and returns
// its run time as a checkpoint sees it: from the end of the create
// command to the pod's exit (a pod may start its payload before its
// create command is over: a checkpoint can only begin after). It checks
// the pod's checksum.
func (r *Runner) podRunTime(ctx context.Context, b *built, name string, create []string) (time.Duration, error) {
	pc := r.podctl()
	if _, _, err := pc.run(ctx, create...); err != nil {
		return 0, err
	}
	defer pc.remove(name)
	start := time.Now()
	out, err := pc.waitExited(ctx, name)
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	if sum, err := b.Checksum(out); err != nil || sum != b.checksum {
		return 0, fmt.Errorf("%s uninterrupted in pod %s printed checksum %q (%v), not the native run's %s", b.Name, name, sum, err, b.checksum)
	}
	return d, nil
}

// criuRun creates a pod with the podctl command create, checkpoints it
// once it has run for at, restores it, and waits for its end.
func (r *Runner) criuRun(ctx context.Context, name string, create []string, at time.Duration) (map[string]float64, string, error) {
	pc := r.podctl()
	defer pc.remove(name)
	m, err := pc.runFor(ctx, name, create, at)
	if err != nil {
		return nil, "", err
	}
	var ck checkpointReport
	d, err := pc.runJSON(ctx, &ck, "checkpoint", "--json", name)
	if err != nil {
		return nil, "", pc.finishedEarly(ctx, name, at, err)
	}
	m["checkpoint-ms"] = ms(d)
	m["frozen-ms"] = ms(ck.Timings.Frozen)
	if ck.Timings.CRIU != nil {
		addCRIUStats(m, ck.Timings.CRIU)
	}
	if err := addSizes(m, ck.Archive); err != nil {
		return nil, "", err
	}
	var rs restoreReport
	if d, err = pc.runJSON(ctx, &rs, "restore", "--json", name); err != nil {
		return nil, "", err
	}
	m["restore-ms"] = ms(d)
	if rs.Timings.CRIU != nil {
		addCRIUStats(m, rs.Timings.CRIU)
	}
	out, err := pc.waitExited(ctx, name)
	return m, out, err
}

// finishedEarly is errFinishedEarly if pod name has exited, which its
// checkpoint at at failed with err; else err.
func (p podctlCmd) finishedEarly(ctx context.Context, name string, at time.Duration, err error) error {
	var info podInfo
	if _, ierr := p.runJSON(ctx, &info, "inspect", name); ierr == nil && info.Status == "exited" {
		return finishedEarly(at, err)
	}
	return err
}

// Vessel paths: through CRIU (the housed vessel's native pod) or through
// the portable snapshot.
const (
	viaCRIU     = "criu"
	viaSnapshot = "snapshot"
)

// vesselPod is the Wasm build as a vessel pod, checkpointed through
// CRIU or through its portable snapshot; the snapshot is restored by
// this podctl, or, with isa set, by the podctl of that ISA under
// qemu-user.
type vesselPod struct {
	r   *Runner
	via string
	isa string
}

func (v vesselPod) name() string {
	switch {
	case v.isa != "":
		return pathSnapshotOn + v.isa
	case v.via == viaCRIU:
		return PathVesselCRIU
	}
	return PathVesselSnapshot
}

func (v vesselPod) measure(ctx context.Context, b *built, at time.Duration, run int) (map[string]float64, string, error) {
	name := podName(b, "wasm", run)
	data, err := v.r.dataDir(b, v.name(), run)
	if err != nil {
		return nil, "", err
	}
	create := vesselPodCreate(b, name, data)
	if v.via == viaCRIU {
		return v.r.criuRun(ctx, name, create, at)
	}
	pc := v.r.podctl()
	defer pc.remove(name)
	m, err := pc.runFor(ctx, name, create, at)
	if err != nil {
		return nil, "", err
	}
	snap := filepath.Join(v.r.Work, "snapshots", name+".snap")
	if err := os.MkdirAll(filepath.Dir(snap), 0o755); err != nil {
		return nil, "", err
	}
	defer os.Remove(snap)
	var ck struct {
		Timings struct {
			Capture time.Duration `json:"captureNs"`
			Write   time.Duration `json:"writeNs"`
		} `json:"timings"`
	}
	d, err := pc.runJSON(ctx, &ck, "checkpoint", "--portable", "-o", snap, "--json", name)
	if err != nil {
		return nil, "", pc.finishedEarly(ctx, name, at, err)
	}
	m["checkpoint-ms"] = ms(d)
	// The guest is stopped from its capture to the end of the command.
	m["frozen-ms"] = ms(ck.Timings.Capture + ck.Timings.Write)
	if err := addSizes(m, snap); err != nil {
		return nil, "", err
	}
	m["module-bytes"] = float64(b.moduleBytes)
	pc.remove(name)
	dst := v.restorer()
	if d, err = dst.runJSON(ctx, &struct{}{}, "restore", "--name", name, "--json", snap); err != nil {
		return nil, "", err
	}
	defer dst.remove(name)
	m["restore-ms"] = ms(d)
	out, err := dst.waitExited(ctx, name)
	return m, out, err
}

// restorer is the podctl that restores the snapshot: this one, or the
// podctl of v.isa under its qemu-user, with a state root of its own
// (its vessel pods are plain: it has no native pods).
func (v vesselPod) restorer() podctlCmd {
	if v.isa == "" {
		return v.r.podctl()
	}
	bin := v.r.podctlFor(v.isa)
	root := filepath.Join(v.r.Work, "root-"+v.isa)
	qemu := qemuFor[v.isa]
	return podctlCmd{
		argv: []string{qemu, bin, "--root", root},
		// Under qemu-user without binfmt, podctl cannot start its own
		// supervisors unless told how (README, "Vessel pods").
		env: []string{"PODCTL_SELF=" + qemu + " " + bin},
	}
}

// podctlFor is the podctl of isa: beside this one, as make build
// installs it.
func (r *Runner) podctlFor(isa string) string {
	return filepath.Join(filepath.Dir(r.Podctl), "podctl-"+isa)
}
