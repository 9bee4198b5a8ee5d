// Package doctor implements the host checks behind `podctl doctor`: whether
// this machine has what podctl needs to run, checkpoint, restore and migrate
// pods (root, kernel namespaces, overlayfs, nf_tables, veth and bridge links,
// cgroup controllers, CRIU >= 4.2, ...) and a few informational facts that
// change how podctl behaves (soft-dirty tracking, userfaultfd, hardware
// breakpoints, qemu-user emulators, IP forwarding).
//
// Every check probes the running system for real: namespaces are looked up in
// /proc, links are created in a throwaway network namespace, CRIU is executed,
// and so on. Run never panics; a check that cannot run reports why in its
// Detail.
package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strings"
	"text/tabwriter"
)

// Status is the outcome of one check.
type Status string

// The outcomes a Check can have.
const (
	// StatusOK means the check passed.
	StatusOK Status = "ok"
	// StatusMissing means a required check failed: podctl cannot work
	// (or cannot work fully) until it is fixed.
	StatusMissing Status = "missing"
	// StatusWarn means an optional check failed, or an informational probe
	// could not run: some podctl features are unavailable.
	StatusWarn Status = "warn"
	// StatusInfo reports a fact about the host that is not a pass or a
	// failure (for example whether soft-dirty tracking is available).
	StatusInfo Status = "info"
)

// Check is the result of one check.
type Check struct {
	// Name identifies the check, e.g. "kernel: pid namespace".
	Name string `json:"name"`
	// Required is true when podctl cannot work without this check passing.
	Required bool `json:"required"`
	// Status is the outcome.
	Status Status `json:"status"`
	// Detail says what was found, e.g. "4.2.1".
	Detail string `json:"detail"`
	// Fix says what to do when the check fails, e.g. "run `make deps`".
	Fix string `json:"fix,omitempty"`
}

// Report is the result of Run: every check, in a stable order.
type Report struct {
	// Checks holds one entry per check, in the order Run defines.
	Checks []Check `json:"checks"`
}

// Options configures Run.
type Options struct {
	// CRIUPath is the criu binary to check. When empty, "criu" is looked up
	// on PATH (and then at /usr/local/sbin/criu, where `make deps` installs
	// its wrapper).
	CRIUPath string
	// SelfExe is the path of the podctl binary. The hardware-breakpoint
	// probe runs it as `SelfExe _hwbp-child` (see HWBreakpointChild). When
	// empty, the probe is skipped and reported as a warning.
	SelfExe string
	// VesselsOnly is set by a podctl built without the native layer
	// (namespaces, cgroups, CRIU: Linux with cgo): only vessel pods are
	// checked for.
	VesselsOnly bool
	// Private lists podctl's directories that nobody else may read: the
	// state root and the PKI directory (empty paths are skipped).
	Private []string
}

// vesselsOnlyReport is the report of a podctl without native pods.
func vesselsOnlyReport() Report {
	return Report{Checks: append([]Check{{
		Name:   "native pods",
		Status: StatusInfo,
		Detail: "not in this build (" + runtime.GOOS + "/" + runtime.GOARCH + ", no cgo): the namespace layer needs Linux with cgo (make build's bin/podctl on amd64); vessel pods (--wasm) work here",
	}}, vesselChecks()...)}
}

// vesselChecks are what vessel pods need: only creating one needs
// wasm-opt (to prepare its module); receiving and running them needs
// nothing beyond podctl.
func vesselChecks() []Check {
	c := Check{Name: "wasm-opt (binaryen)", Status: StatusOK}
	if p, err := exec.LookPath("wasm-opt"); err == nil {
		c.Detail = p
	} else {
		c.Status = StatusWarn
		c.Detail = "not found: this host can run, restore and receive vessel pods, but not create them"
		c.Fix = "apt-get install binaryen (make deps)"
	}
	return []Check{c}
}

// OK reports whether every Required check has StatusOK.
func (r Report) OK() bool {
	for _, c := range r.Checks {
		if c.Required && c.Status != StatusOK {
			return false
		}
	}
	return true
}

// WriteTable writes the report as an aligned table with the columns CHECK,
// STATUS, DETAIL and FIX. Line breaks and tabs inside fields are replaced by
// spaces so that every check stays on one line.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if _, err := fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL\tFIX"); err != nil {
		return fmt.Errorf("doctor: write table: %w", err)
	}
	for _, c := range r.Checks {
		if _, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n",
			oneLine(c.Name), oneLine(string(c.Status)), oneLine(c.Detail), oneLine(c.Fix)); err != nil {
			return fmt.Errorf("doctor: write table: %w", err)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("doctor: write table: %w", err)
	}
	return nil
}

// WriteJSON writes the report as one indented JSON object:
// {"checks": [{"name": ..., "required": ..., "status": ..., "detail": ...,
// "fix": ...}, ...]}.
func (r Report) WriteJSON(w io.Writer) error {
	if r.Checks == nil {
		r.Checks = []Check{} // "checks": [] rather than null
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("doctor: write json: %w", err)
	}
	return nil
}

// oneLine collapses runs of whitespace (including newlines and tabs, which
// would break the table) into single spaces.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\t\n\r\v\f") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// HWBreakpointChildArg is the hidden subcommand (os.Args[1]) under which
// podctl must call HWBreakpointChild: the hardware-breakpoint probe runs
// `Options.SelfExe _hwbp-child`.
const HWBreakpointChildArg = "_hwbp-child"

// hwbpChildBanner starts the line HWBreakpointChild prints.
const hwbpChildBanner = "podctl-hwbp-child"
