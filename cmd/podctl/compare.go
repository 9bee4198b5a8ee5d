//go:build linux && cgo

package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/podctl/podctl/compare"
	"github.com/podctl/podctl/compare/workloads"
)

func compareCommand(g *globalOptions) *cobra.Command {
	var (
		o      compare.Options
		size   string
		out    string
		asJSON bool
		tls    pkiFlags
	)
	c := &cobra.Command{
		Use:   "compare [OPTIONS]",
		Short: "Measure every checkpoint and migration path side by side on a workload suite, against raw CRIU",
		Example: `  podctl compare --size small --runs 1 --workloads nbody,kv
  podctl compare --isa arm64,s390x --out eval     # report.md, results.json, results.txt, SVG charts
  podctl compare --to 192.0.2.11:7070 --pki /etc/podctl/pki   # migrations too, with their downtime
  benchstat old/results.txt eval/results.txt`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			o.Size = workloads.Size(size)
			self, err := os.Executable()
			if err != nil {
				return err
			}
			work, err := os.MkdirTemp("", "podctl-compare-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(work)
			r := &compare.Runner{Options: o, Podctl: self, Flags: []string{"--root", g.root}, Work: work,
				DockFlags: []string{"--pki", absPath(tls.dir), "--cert", tls.name}}
			if f, ok := c.ErrOrStderr().(*os.File); ok && isTerminal(f) {
				r.Progress = func(s compare.Step) {
					fmt.Fprintf(f, "\r\033[K[%d/%d] %s · %s · run %d of %d", s.Done, s.Total, s.Workload, s.Path, s.Run, s.Runs)
				}
				defer fmt.Fprint(f, "\r\033[K")
			}
			res, err := r.Compare(c.Context(), out)
			if res != nil && asJSON {
				if jerr := res.WriteJSON(c.OutOrStdout()); jerr != nil {
					return jerr
				}
			} else if res != nil {
				fmt.Fprint(c.OutOrStdout(), res.Summary(out))
			}
			return err
		},
	}
	f := c.Flags()
	f.StringSliceVar(&o.Workloads, "workloads", nil, "workloads to run, comma-separated (default: the whole suite)")
	f.StringVar(&size, "size", string(workloads.Full), "workload size: small (CI) or full (the papers' sizes)")
	f.IntVar(&o.Runs, "runs", 5, "runs of each workload on each path")
	f.StringSliceVar(&o.ISAs, "isa", nil, "also restore the portable snapshot with podctl of these ISAs under qemu-user")
	f.Float64Var(&o.CheckpointAt, "checkpoint-at", 0.5, "when to checkpoint, as a fraction of the uninterrupted run's time")
	f.StringVar(&o.To, "to", "", "also migrate to this dock (HOST:PORT) mid-run by each of podctl's paths, and let the workload finish there")
	f.StringVarP(&out, "out", "o", "compare-results", "directory of the report, results and charts")
	f.BoolVar(&asJSON, "json", false, "print every run's results as JSON")
	tls.register(c)
	return c
}
