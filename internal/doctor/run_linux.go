//go:build linux

package doctor

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Default time limits. They are fields of runner so that tests can shorten
// them; Run always uses these.
const (
	// defaultCmdTimeout bounds each external command (criu, modprobe). The
	// command and its process group are killed when it runs out.
	defaultCmdTimeout = 20 * time.Second
	// defaultHWBPWait is how long the hardware-breakpoint probe waits for a
	// trap once the watchpoint is armed on a thread that writes to the
	// watched address continuously.
	defaultHWBPWait = time.Second
	// netlinkTimeout bounds each netlink request of the link probes.
	netlinkTimeout = 5 * time.Second
)

// runner holds the configuration of one Run.
type runner struct {
	opts       Options
	cmdTimeout time.Duration
	hwbpWait   time.Duration
}

func newRunner(opts Options) *runner {
	return &runner{opts: opts, cmdTimeout: defaultCmdTimeout, hwbpWait: defaultHWBPWait}
}

// probe is one unit of work of Run. It yields one or more checks.
type probe struct {
	// name and required describe the check reported when run panics or is
	// not started because ctx is done.
	name     string
	required bool
	run      func(ctx context.Context) []Check
}

// Run runs every check and returns their results in a fixed order. The checks
// run in parallel; each bounds its own blocking work (external commands are
// killed after 20 s), and all of them stop early when ctx is done. Run never
// panics: a check that panics is reported as failed.
func Run(ctx context.Context, opts Options) Report {
	if opts.VesselsOnly {
		return vesselsOnlyReport()
	}
	return newRunner(opts).run(ctx)
}

func (r *runner) probes() []probe {
	return []probe{
		{name: "privileges: root", required: true, run: checkRoot},
		{name: "kernel: namespaces", required: true, run: checkNamespaces},
		{name: "kernel: overlayfs", required: true, run: r.checkOverlay},
		{name: "kernel: nf_tables", required: true, run: checkNFTables},
		{name: "kernel: veth", required: true, run: checkVeth},
		{name: "kernel: bridge", required: true, run: checkBridge},
		{name: "kernel: checkpoint/restore", required: true, run: checkCheckpointRestore},
		{name: "kernel: userfaultfd", required: false, run: checkUserfaultfd},
		{name: "kernel: soft-dirty tracking", required: false, run: checkSoftDirty},
		{name: "cgroups", required: true, run: checkCgroups},
		{name: "seccomp", required: true, run: checkSeccomp},
		{name: "criu", required: true, run: r.checkCRIU},
		{name: "hardware breakpoints", required: false, run: r.checkHWBreakpoints},
		{name: "qemu-user emulators", required: false, run: checkQEMU},
		{name: "network: ip forwarding", required: false, run: checkIPForward},
		{name: "wasm-opt (binaryen)", required: false, run: func(context.Context) []Check { return vesselChecks() }},
		{name: "files: private", required: false, run: func(context.Context) []Check { return checkPrivate(r.opts.Private) }},
	}
}

func (r *runner) run(ctx context.Context) Report {
	probes := r.probes()
	results := make([][]Check, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() { results[i] = runProbe(ctx, p) })
	}
	wg.Wait()

	var rep Report
	for _, cs := range results {
		rep.Checks = append(rep.Checks, cs...)
	}
	return rep
}

// runProbe runs p, turning a panic or a done ctx into a failed check.
func runProbe(ctx context.Context, p probe) (out []Check) {
	defer func() {
		if v := recover(); v != nil {
			out = []Check{failed(p.name, p.required,
				fmt.Sprintf("internal error: check panicked: %v", v),
				"report this as a podctl bug")}
		}
	}()
	if err := ctx.Err(); err != nil {
		return []Check{failed(p.name, p.required, "not run: "+err.Error(), "")}
	}
	return p.run(ctx)
}

// passed returns a successful check.
func passed(name string, required bool, detail string) Check {
	return Check{Name: name, Required: required, Status: StatusOK, Detail: detail}
}

// failed returns a failed check: StatusMissing when it is required,
// StatusWarn otherwise.
func failed(name string, required bool, detail, fix string) Check {
	st := StatusWarn
	if required {
		st = StatusMissing
	}
	return Check{Name: name, Required: required, Status: st, Detail: detail, Fix: fix}
}

// informational returns an informational check (never required).
func informational(name, detail, fix string) Check {
	return Check{Name: name, Status: StatusInfo, Detail: detail, Fix: fix}
}
