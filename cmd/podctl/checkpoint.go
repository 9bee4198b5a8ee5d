//go:build linux && cgo

package main

import (
	"github.com/spf13/cobra"

	"github.com/podctl/podctl/internal/names"
	"github.com/podctl/podctl/internal/size"
	"github.com/podctl/podctl/pod/handle"
	"github.com/podctl/podctl/pod/housed"
)

func checkpointCommand(g *globalOptions) *cobra.Command {
	var (
		o      handle.CheckpointOptions
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "checkpoint [OPTIONS] POD",
		Short: "Freeze a pod and write it to a self-contained archive",
		Args:  exactArgs(1, "one pod name"),
		RunE: func(c *cobra.Command, args []string) error {
			p, err := g.open(args[0])
			if err != nil {
				return err
			}
			rep, err := p.Checkpoint(c.Context(), o)
			return printReport(c, rep, err, asJSON)
		},
	}
	c.Flags().StringVarP(&o.Output, "output", "o", "", "write the archive to FILE (default: keep it in the pod's directory and leave the pod checkpointed)")
	c.Flags().BoolVar(&o.LeaveRunning, "leave-running", false, "let the pod carry on after the checkpoint")
	c.Flags().StringVar(&o.Compression, "compress", "zstd", "archive compression: zstd or none")
	c.Flags().BoolVar(&o.Portable, "portable", false, "for a Wasm vessel: write its portable snapshot (restorable on any ISA) instead of a CRIU archive")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

func restoreCommand(g *globalOptions) *cobra.Command {
	var (
		o      handle.RestoreOptions
		memory string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "restore [OPTIONS] FILE|POD",
		Short: "Restart a pod from an archive or from its last checkpoint",
		Args:  exactArgs(1, "an archive file or a checkpointed pod's name"),
		RunE: func(c *cobra.Command, args []string) error {
			if o.Name != "" {
				if err := names.Validate(o.Name); err != nil {
					return err
				}
			}
			if memory != "" {
				var err error
				if o.MemoryLimit, err = size.Parse(memory); err != nil {
					return err
				}
			}
			housing, err := g.housing()
			if err != nil {
				return err
			}
			src, err := housed.OpenSource(g.vessels(), args[0], housing, g.manager)
			if err != nil {
				return err
			}
			rep, err := src.Restore(c.Context(), o)
			return printReport(c, rep, err, asJSON)
		},
	}
	c.Flags().StringVar(&o.Name, "name", "", "name of the restored pod (default: the archived name)")
	c.Flags().BoolVar(&o.Force, "force", false, "restore even if this host's CPU lacks features of the source's")
	c.Flags().StringVar(&memory, "memory", "", "vessel snapshots: cap the guest's memory (e.g. 64m); a snapshot with more is refused")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}
