package compare

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/podctl/podctl/compare/workloads"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/virtns"
)

// Names of the paths a comparison measures. Baseline is the papers'
// baseline, which the report's ratios divide by.
const (
	// PathNative, PathWasmPlain and PathWasmPrepared are the
	// uninterrupted references: the native binary, the Wasm build under
	// stock wazero with its own WASI, and the prepared module as podctl
	// runs it. They measure run time only.
	PathNative       = "native"
	PathWasmPlain    = "wasm-plain"
	PathWasmPrepared = "wasm-prepared"
	// Baseline is raw CRIU with its default options on the native
	// process tree.
	Baseline = "criu"
	// PathPodctl is the native binary in a pod, through podctl
	// checkpoint and restore.
	PathPodctl = "podctl"
	// PathPodman is the native binary in a Podman container, through
	// podman container checkpoint and restore.
	PathPodman = "podman"
	// PathVesselCRIU is the Wasm build as a housed vessel pod, through
	// podctl checkpoint and restore (CRIU).
	PathVesselCRIU = "vessel-criu"
	// PathVesselSnapshot is the same vessel through its portable
	// snapshot.
	PathVesselSnapshot = "vessel-snapshot"
	// pathSnapshotOn prefixes the paths that restore the portable
	// snapshot with podctl of another ISA under qemu-user
	// ("snapshot-s390x"): emulated, their times are not comparable.
	pathSnapshotOn = "snapshot-"
)

// Emulated reports whether path runs under qemu-user: its times measure
// the emulator, and only its correctness compares.
func Emulated(path string) bool {
	return strings.HasPrefix(path, pathSnapshotOn) && path != pathSnapshotOn
}

// Step is what a comparison is doing, for a progress display.
type Step struct {
	Workload, Path string
	// Run counts the path's runs of the workload from 1, of Runs.
	Run, Runs int
	// Done and Total count every measured run of the comparison.
	Done, Total int
}

// Runner runs a comparison: podctl's paths as whole podctl commands, raw
// CRIU as whole criu commands, so that both sides pay for their own
// start.
type Runner struct {
	Options Options
	// Podctl is the podctl binary of the podctl paths; its docks for
	// other ISAs are beside it (podctl-s390x, ...). Flags are its global
	// flags (--root).
	Podctl string
	Flags  []string
	// Work holds the builds, images, archives and data directories; the
	// caller removes it.
	Work string
	// CC and Clang build the workloads natively and for wasm32-wasi
	// ("" : gcc and clang-14).
	CC, Clang string
	// Podman says whether Podman can run here, and why not (see
	// ProbePodman).
	Podman PodmanProbe
	// Progress, if set, is told of each run as it starts.
	Progress func(Step)
	// DockFlags are podctl's flags for the --to dock: this node's
	// certificate (--pki DIR --cert NAME).
	DockFlags []string
}

// path is one way of checkpointing and restoring a workload.
type path interface {
	name() string
	// measure runs the workload from its start, checkpoints it once it
	// has run for at, restores it and waits for its end. It returns the
	// run's metrics and what the workload printed.
	measure(ctx context.Context, b *built, at time.Duration, run int) (metrics map[string]float64, stdout string, err error)
}

// built is a workload built both ways.
type built struct {
	workloads.Workload
	size   workloads.Size
	native string // the static binary
	wasm   string // the wasm32-wasi module
	// image is a root filesystem holding only the binary (as /NAME) and
	// an empty /data: what the native pod runs.
	image string
	// checksum is the uninterrupted native run's, nativeTime its run
	// time.
	checksum   string
	nativeTime time.Duration
	// podTime, vesselTime and podmanTime are the run times of the native
	// pod, the vessel pod and the Podman container as their checkpoints
	// see them (see podRunTime).
	podTime, vesselTime, podmanTime time.Duration
	// moduleBytes is the size of the prepared module, which a portable
	// snapshot carries (CRIU's images do not carry the executable).
	moduleBytes int
}

// Run measures every workload on every path, Options.Runs times each,
// the paths interleaved: each round runs every path once, starting with
// the next path of the last round, so that no path always runs first or
// after the same other one.
func (r *Runner) Run(ctx context.Context) (*Results, error) {
	ws, err := workloads.Lookup(r.Options.Workloads)
	if err != nil {
		return nil, err
	}
	paths := r.paths()
	res := &Results{Options: r.Options}
	total := len(ws) * r.Options.Runs * (len(paths) + 3)
	done := 0
	for _, w := range ws {
		b, err := r.build(ctx, w)
		if err != nil {
			return nil, err
		}
		refs, err := r.references(ctx, b)
		if err != nil {
			return nil, err
		}
		all := append(append([]path{}, refs...), paths...)
		for run := 0; run < r.Options.Runs; run++ {
			for i := range all {
				p := all[(i+run)%len(all)]
				done++
				if r.Progress != nil {
					r.Progress(Step{Workload: w.Name, Path: p.name(), Run: run + 1, Runs: r.Options.Runs, Done: done, Total: total})
				}
				at := time.Duration(float64(b.runTime(p.name())) * r.Options.CheckpointAt)
				metrics, stdout, err := p.measure(ctx, b, at, run)
				if errors.Is(err, errFinishedEarly) {
					res.Runs = append(res.Runs, Run{Workload: w.Name, Path: p.name(), Index: run, Match: true, Missed: err.Error()})
					continue
				}
				if err != nil {
					if ctx.Err() != nil {
						return nil, ctx.Err()
					}
					return nil, fmt.Errorf("%s on %s (run %d): %w", w.Name, p.name(), run+1, err)
				}
				sum, err := w.Checksum(stdout)
				if err != nil {
					return nil, fmt.Errorf("%s on %s (run %d): %w; it printed:\n%s", w.Name, p.name(), run+1, err, tail(stdout))
				}
				res.Runs = append(res.Runs, Run{Workload: w.Name, Path: p.name(), Index: run, Checksum: sum, Match: sum == b.checksum, Metrics: metrics})
			}
		}
	}
	return res, nil
}

// paths are the checkpointing paths the options ask for, the baseline
// first.
func (r *Runner) paths() []path {
	ps := []path{rawCRIU{r}, podctlPod{r}}
	if r.Podman.OK {
		ps = append(ps, podmanContainer{r})
	}
	ps = append(ps, vesselPod{r: r, via: viaCRIU}, vesselPod{r: r, via: viaSnapshot})
	for _, isa := range r.Options.ISAs {
		ps = append(ps, vesselPod{r: r, via: viaSnapshot, isa: isa})
	}
	if r.Options.To != "" {
		for _, of := range []string{PathPodctl, PathVesselCRIU, PathVesselSnapshot} {
			ps = append(ps, migration{r: r, of: of})
		}
	}
	return ps
}

// build compiles w both ways into the work directory, makes the native
// pod's image, and runs it once uninterrupted for its checksum.
func (r *Runner) build(ctx context.Context, w workloads.Workload) (*built, error) {
	dir := filepath.Join(r.Work, "build", w.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	clang := r.Clang
	if clang == "" {
		clang = "clang-14"
	}
	b := &built{Workload: w, size: r.Options.Size}
	var err error
	if b.native, err = w.BuildNative(ctx, dir, r.CC); err != nil {
		return nil, err
	}
	if b.wasm, err = w.BuildWasm(ctx, dir, clang); err != nil {
		return nil, err
	}
	if b.image, err = makeImage(filepath.Join(r.Work, "image", w.Name), b.native); err != nil {
		return nil, err
	}
	return b, nil
}

// makeImage makes a root filesystem in dir holding the static binary
// bin as /NAME, and the directories a pod needs: /etc, /bin and /data,
// the data directory of the workloads that need one.
func makeImage(dir, bin string) (string, error) {
	for _, d := range []string{"etc", "bin", "data", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", fmt.Errorf("make the image of %s: %w", filepath.Base(bin), err)
		}
	}
	b, err := os.ReadFile(bin)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, filepath.Base(bin)), b, 0o755)
	}
	if err != nil {
		return "", fmt.Errorf("make the image of %s: %w", filepath.Base(bin), err)
	}
	return dir, nil
}

// tail is the end of a workload's output, for an error message.
func tail(s string) string {
	const n = 400
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// errFinishedEarly is returned by a path whose workload ended before its
// checkpoint: the size is too small for this machine.
var errFinishedEarly = errors.New("the workload finished before its checkpoint (a larger --size runs longer)")

// finishedEarly is errFinishedEarly for a checkpoint taken at at, which
// failed with err because the workload had exited.
func finishedEarly(at time.Duration, err error) error {
	return fmt.Errorf("%w: at %s it had exited (%v)", errFinishedEarly, at.Round(time.Millisecond), err)
}

// Compare checks the options, measures, and writes the results into
// dir (see Results.Write). A run whose checksum differs from the
// reference's is reported in the results and makes Compare fail once
// they are written.
func (r *Runner) Compare(ctx context.Context, dir string) (*Results, error) {
	if _, err := r.Options.Check(exec.LookPath); err != nil {
		return nil, err
	}
	for _, isa := range r.Options.ISAs {
		if _, err := os.Stat(r.podctlFor(isa)); err != nil {
			return nil, errdefs.New(errdefs.Unsupported, "podctl compare: --isa %s needs %s beside podctl (make build makes it)", isa, r.podctlFor(isa))
		}
	}
	if r.Options.To != "" {
		if err := reachable(ctx, r.Options.To); err != nil {
			return nil, err
		}
		if err := r.checkDock(ctx); err != nil {
			return nil, err
		}
	}
	r.Podman = ProbePodman(ctx)
	res, err := r.Run(ctx)
	if err != nil {
		return nil, err
	}
	res.Machine = ThisMachine(ctx, virtns.CRIUVersion)
	res.Podman = r.Podman
	if err := res.Write(dir); err != nil {
		return nil, err
	}
	if m := res.Mismatches(); len(m) > 0 {
		return res, fmt.Errorf("podctl compare: %d runs restored to a result other than the uninterrupted run's (first: %s)", len(m), m[0])
	}
	return res, nil
}

// reachable refuses a dock that does not answer on its address.
func reachable(ctx context.Context, dock string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", dock)
	if err != nil {
		return errdefs.New(errdefs.Unsupported, "podctl compare: --to %s: the dock is unreachable: %v", dock, err)
	}
	return conn.Close()
}
