package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/podctl/podctl/internal/errdefs"
)

// The commands that work on a pod of any kind, through the seam of
// package handle: every build has them, and g.open, which each build
// has, finds the pod.

func inspectCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect POD",
		Short: "Show everything about a pod as JSON",
		Args:  exactArgs(1, "one pod name"),
		RunE: func(c *cobra.Command, args []string) error {
			p, err := g.open(args[0])
			if err != nil {
				return err
			}
			st, err := p.Inspect(c.Context())
			if err != nil {
				return err
			}
			return writeJSON(c.OutOrStdout(), st)
		},
	}
}

func logsCommand(g *globalOptions) *cobra.Command {
	var follow bool
	c := &cobra.Command{
		Use:   "logs [-f] POD",
		Short: "Print a pod's standard output and error",
		Args:  exactArgs(1, "one pod name"),
		RunE: func(c *cobra.Command, args []string) error {
			p, err := g.open(args[0])
			if err != nil {
				return err
			}
			return p.Logs(c.Context(), follow, c.OutOrStdout())
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until the pod exits")
	return c
}

func stopCommand(g *globalOptions) *cobra.Command {
	var timeout float64
	c := &cobra.Command{
		Use:   "stop [--timeout S] POD",
		Short: "Stop a pod: SIGTERM, then SIGKILL after the timeout",
		Args:  exactArgs(1, "one pod name"),
		RunE: func(c *cobra.Command, args []string) error {
			if timeout < 0 {
				return errdefs.New(errdefs.InvalidArgument, "invalid --timeout %v: must not be negative", timeout)
			}
			p, err := g.open(args[0])
			if err != nil {
				return err
			}
			return p.Stop(c.Context(), time.Duration(timeout*float64(time.Second)))
		},
	}
	c.Flags().Float64VarP(&timeout, "timeout", "t", 10, "seconds to wait after SIGTERM before SIGKILL")
	return c
}

// volumeRemover is a pod that has named volumes to remove with it.
type volumeRemover interface {
	RemoveWithVolumes(ctx context.Context, force bool) error
}

func rmCommand(g *globalOptions) *cobra.Command {
	return newRmCommand(func(c *cobra.Command, name string, o rmOptions) error {
		p, err := g.open(name)
		if err != nil {
			return err
		}
		if vr, ok := p.(volumeRemover); ok && o.volumes {
			return vr.RemoveWithVolumes(c.Context(), o.force)
		}
		return p.Remove(c.Context(), o.force)
	})
}
