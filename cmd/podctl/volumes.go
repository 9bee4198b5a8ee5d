//go:build linux && cgo

package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/podctl/podctl/internal/errdefs"
)

// volumeCommand is `podctl volume ls|inspect|rm`, for named volumes.
func volumeCommand(g *globalOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "volume",
		Short: "List, inspect and remove named volumes (made by create -v NAME:/DIR)",
		Args:  exactArgs(0, "a subcommand: ls, inspect or rm"),
		RunE:  func(c *cobra.Command, args []string) error { return c.Help() },
	}
	var asJSON bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List named volumes and the pods that mount them",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			m, err := g.manager()
			if err != nil {
				return err
			}
			vs, err := m.Volumes(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if vs == nil {
					return writeJSON(c.OutOrStdout(), []any{})
				}
				return writeJSON(c.OutOrStdout(), vs)
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tCREATED\tUSED BY")
			for _, v := range vs {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, ago(v.CreatedAt), strings.Join(v.UsedBy, ","))
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	inspect := &cobra.Command{
		Use:   "inspect VOLUME",
		Short: "Show a named volume as JSON: where its files are, which pods mount it",
		Args:  exactArgs(1, "one volume name"),
		RunE: func(c *cobra.Command, args []string) error {
			m, err := g.manager()
			if err != nil {
				return err
			}
			v, err := m.InspectVolume(c.Context(), args[0])
			if err != nil {
				return err
			}
			return writeJSON(c.OutOrStdout(), v)
		},
	}
	rm := &cobra.Command{
		Use:   "rm VOLUME...",
		Short: "Remove named volumes and their files (refused while a pod mounts one)",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errdefs.New(errdefs.Usage, "podctl volume rm: expected at least one volume name")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			m, err := g.manager()
			if err != nil {
				return err
			}
			return forEach(args, func(name string) error { return m.RemoveVolume(c.Context(), name) })
		},
	}
	c.AddCommand(ls, inspect, rm)
	return c
}
