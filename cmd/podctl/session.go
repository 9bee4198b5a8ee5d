package main

import (
	"context"
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
	// sub is a subcommand that checks --dock, connects to the dock (whose
	// client checks the session) and runs do on the pod of the session.
	sub := func(use, short string, do func(ctx context.Context, c *cobra.Command, cl *dock.Client, session string) error) *cobra.Command {
		s := &cobra.Command{
			Use:   use + " SESSION --dock ADDR",
			Short: short,
			Args:  exactArgs(1, "one session"),
			RunE: func(c *cobra.Command, args []string) error {
				if err := checkDockAddr("--dock", addr); err != nil {
					return err
				}
				cl, err := dialDock(addr, tls)
				if err != nil {
					return err
				}
				defer cl.Close()
				return do(c.Context(), c, cl, args[0])
			},
		}
		s.Flags().StringVar(&addr, "dock", "", "address (HOST:PORT) of the dock the pod was migrated to")
		tls.register(s)
		return s
	}
	c.AddCommand(
		sub("inspect", "Show the pod as podctl inspect shows it at the dock", func(ctx context.Context, c *cobra.Command, cl *dock.Client, session string) error {
			raw, err := cl.InspectSession(ctx, session)
			if err != nil {
				return err
			}
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			return writeJSON(c.OutOrStdout(), v)
		}),
		sub("logs", "Print the pod's output at the dock", func(ctx context.Context, c *cobra.Command, cl *dock.Client, session string) error {
			return cl.LogsSession(ctx, session, c.OutOrStdout())
		}),
		sub("rm", "Remove the pod at the dock, ending it first if it runs", func(ctx context.Context, _ *cobra.Command, cl *dock.Client, session string) error {
			return cl.RemoveSession(ctx, session)
		}),
	)
	return c
}
