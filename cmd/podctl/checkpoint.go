//go:build linux && cgo

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/pod/housed"
	"github.com/podctl/podctl/pod/vesselpod"
)

func checkpointCommand(g *globalOptions) *cobra.Command {
	var (
		o        pod.CheckpointOptions
		compress string
		asJSON   bool
		portable bool
	)
	c := &cobra.Command{
		Use:   "checkpoint [OPTIONS] POD",
		Short: "Freeze a pod and write it to a self-contained archive",
		Args:  exactArgs(1, "one pod name"),
		RunE: func(c *cobra.Command, args []string) error {
			p, err := g.open(c.Context(), args[0])
			if err != nil {
				return err
			}
			if v, ok := p.(*vesselpod.Handle); ok {
				return checkpointVessel(c, v.Store(), v.Name(), o.Output, o.LeaveRunning, asJSON)
			}
			comp, err := checkpoint.ParseCompression(compress)
			if err != nil {
				return err
			}
			o.Compression = comp
			m, err := g.manager()
			if err != nil {
				return err
			}
			if portable {
				h, ok := p.(*housed.Handle)
				if !ok {
					return errdefs.New(errdefs.Unsupported, "pod %s is not a Wasm vessel: only a vessel has a portable snapshot", args[0])
				}
				if o.Output == "" {
					return errdefs.New(errdefs.Usage, "podctl checkpoint --portable: say where the snapshot goes with -o FILE")
				}
				view, vessel := h.Vessel()
				return checkpointVessel(c, view, vessel, o.Output, o.LeaveRunning, asJSON)
			}
			res, err := m.Checkpoint(c.Context(), args[0], o)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), res)
			}
			t := res.Timings
			fmt.Fprintf(c.OutOrStdout(), "%s (%s): frozen %s, dump %s, write %s, total %s\n",
				res.Archive, byteSize(res.Bytes), ms(t.Frozen), ms(t.Dump), ms(t.Write), ms(t.Total))
			return nil
		},
	}
	c.Flags().StringVarP(&o.Output, "output", "o", "", "write the archive to FILE (default: keep it in the pod's directory and leave the pod checkpointed)")
	c.Flags().BoolVar(&o.LeaveRunning, "leave-running", false, "let the pod carry on after the checkpoint")
	c.Flags().StringVar(&compress, "compress", "zstd", "archive compression: zstd or none")
	c.Flags().BoolVar(&portable, "portable", false, "for a Wasm vessel: write its portable snapshot (restorable on any ISA) instead of a CRIU archive")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

func restoreCommand(g *globalOptions) *cobra.Command {
	var (
		o      pod.RestoreOptions
		memory string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "restore [OPTIONS] FILE|POD",
		Short: "Restart a pod from an archive or from its last checkpoint",
		Args:  exactArgs(1, "an archive file or a checkpointed pod's name"),
		RunE: func(c *cobra.Command, args []string) error {
			if o.Name != "" {
				if err := pod.ValidateName(o.Name); err != nil {
					return err
				}
			}
			if isVesselSource(g, args[0]) {
				return restoreVessel(c, g, args[0], o.Name, memory, asJSON)
			}
			if memory != "" {
				return errdefs.New(errdefs.Usage, "podctl restore: --memory is for vessel snapshots")
			}
			m, err := g.manager()
			if err != nil {
				return err
			}
			man, t, err := m.Restore(c.Context(), args[0], o)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), map[string]any{"name": man.Spec.Name, "ip": man.Endpoint.IP, "timings": t})
			}
			fmt.Fprintf(c.OutOrStdout(), "%s restored (%s): restore %s, total %s\n", man.Spec.Name, man.Endpoint.IP, ms(t.Restore), ms(t.Total))
			return nil
		},
	}
	c.Flags().StringVar(&o.Name, "name", "", "name of the restored pod (default: the archived name)")
	c.Flags().BoolVar(&o.Force, "force", false, "restore even if this host's CPU lacks features of the source's")
	c.Flags().StringVar(&memory, "memory", "", "vessel snapshots: cap the guest's memory (e.g. 64m); a snapshot with more is refused")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}
