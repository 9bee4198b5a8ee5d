package compare

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/podctl/podctl/compare/workloads"
	"github.com/podctl/podctl/internal/errdefs"
)

// Options are what `podctl compare` is asked to measure.
type Options struct {
	// Workloads are the workloads' names (empty: the whole suite).
	Workloads []string `json:"workloads,omitempty"`
	// Size is the workloads' size: small (CI) or full.
	Size workloads.Size `json:"size"`
	// Runs is how many times each path runs each workload.
	Runs int `json:"runs"`
	// ISAs are the ISAs whose podctl restores the portable snapshot under
	// qemu-user (emulated: their times are not comparable).
	ISAs []string `json:"isas,omitempty"`
	// CheckpointAt is when, as a fraction of the uninterrupted run's
	// time, each path checkpoints (Wanco's choice: a half).
	CheckpointAt float64 `json:"checkpointAt"`
	// To is a dock to migrate to by each path ("" : no migrations).
	To string `json:"to,omitempty"`
}

// qemuFor names the qemu-user emulator of each ISA podctl builds for.
var qemuFor = map[string]string{
	"arm64":   "qemu-aarch64-static",
	"riscv64": "qemu-riscv64-static",
	"s390x":   "qemu-s390x-static",
	"ppc64le": "qemu-ppc64le-static",
	"loong64": "qemu-loongarch64-static",
}

// Check refuses options that cannot be measured, each with one line
// that says why. lookPath finds a program (exec.LookPath).
func (o Options) Check(lookPath func(string) (string, error)) ([]workloads.Workload, error) {
	ws, err := workloads.Lookup(o.Workloads)
	if err != nil {
		return nil, errdefs.New(errdefs.Usage, "podctl compare: %v", err)
	}
	switch {
	case o.Size != workloads.Small && o.Size != workloads.Full:
		return nil, errdefs.New(errdefs.Usage, "podctl compare: --size must be small or full, not %q", o.Size)
	case o.Runs < 1:
		return nil, errdefs.New(errdefs.Usage, "podctl compare: --runs must be at least 1, not %d", o.Runs)
	case o.CheckpointAt <= 0 || o.CheckpointAt >= 1:
		return nil, errdefs.New(errdefs.Usage, "podctl compare: --checkpoint-at must be a fraction of the run between 0 and 1, not %g", o.CheckpointAt)
	}
	for _, isa := range o.ISAs {
		qemu, ok := qemuFor[isa]
		if !ok {
			return nil, errdefs.New(errdefs.Usage, "podctl compare: --isa %s: podctl builds for %s", isa, strings.Join(isaNames(), ", "))
		}
		if _, err := lookPath(qemu); err != nil {
			return nil, errdefs.New(errdefs.Unsupported, "podctl compare: --isa %s needs %s, which is not installed (make deps installs it)", isa, qemu)
		}
	}
	return ws, nil
}

// isaNames lists the ISAs --isa takes, in a fixed order.
func isaNames() []string {
	return []string{"arm64", "riscv64", "s390x", "ppc64le", "loong64"}
}

// Results are what results.json holds: the machine and every run.
type Results struct {
	Machine Machine `json:"machine"`
	Options Options `json:"options"`
	// Podman says whether the Podman path could run, and why not.
	Podman PodmanProbe `json:"podman"`
	Runs   []Run       `json:"runs"`
}

// WriteJSON writes r as indented JSON.
func (r Results) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("results.json: %w", err)
	}
	return nil
}
