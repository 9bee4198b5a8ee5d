package main

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/podctl/podctl/dock"
)

// sessionCommand reaches, at a dock, the pods this node migrated there,
// by the session `podctl migrate` printed.
func sessionCommand() *cobra.Command {
	var (
		addr string
		tls  pkiFlags
	)
	c := &cobra.Command{
		Use:   "session",
		Short: "Inspect, read or remove a pod this node migrated to a dock, by its migration's session",
		Long: "A migration's session (printed by podctl migrate) lets the node that migrated a pod reach it at the dock:\n" +
			"no other node can, and the dock's own pods are out of reach.",
	}
	// client checks --dock and connects to the dock (whose client checks
	// the session).
	client := func() (*dock.Client, error) {
		if err := checkDockAddr("--dock", addr); err != nil {
			return nil, err
		}
		return dialDock(addr, tls)
	}
	inspect := &cobra.Command{
		Use:   "inspect SESSION --dock ADDR",
		Short: "Show the pod as podctl inspect shows it at the dock",
		Args:  exactArgs(1, "one session"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			defer cl.Close()
			raw, err := cl.InspectSession(c.Context(), args[0])
			if err != nil {
				return err
			}
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			return writeJSON(c.OutOrStdout(), v)
		},
	}
	logs := &cobra.Command{
		Use:   "logs SESSION --dock ADDR",
		Short: "Print the pod's output at the dock",
		Args:  exactArgs(1, "one session"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			defer cl.Close()
			return cl.LogsSession(c.Context(), args[0], c.OutOrStdout())
		},
	}
	rm := &cobra.Command{
		Use:   "rm SESSION --dock ADDR",
		Short: "Remove the pod at the dock, ending it first if it runs",
		Args:  exactArgs(1, "one session"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			defer cl.Close()
			return cl.RemoveSession(c.Context(), args[0])
		},
	}
	for _, sub := range []*cobra.Command{inspect, logs, rm} {
		sub.Flags().StringVar(&addr, "dock", "", "address (HOST:PORT) of the dock the pod was migrated to")
		tls.register(sub)
	}
	c.AddCommand(inspect, logs, rm)
	return c
}
