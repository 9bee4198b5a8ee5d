//go:build !(linux && cgo)

package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/size"
	"github.com/podctl/podctl/migrate"
	"github.com/podctl/podctl/pod/handle"
	"github.com/podctl/podctl/pod/vesselpod"
)

// podCommands are this build's pod commands: it has no native layer
// (namespaces, cgroups, CRIU need Linux and cgo), so they handle Wasm
// vessel pods only.
func podCommands(g *globalOptions) []*cobra.Command {
	return []*cobra.Command{
		vesselCreateCommand(g), vesselPsCommand(g), inspectCommand(g), logsCommand(g), stopCommand(g), rmCommand(g),
		vesselCheckpointCommand(g), vesselRestoreCommand(g), vesselMigrateCommand(g), vesselDockCommand(g),
	}
}

func vesselCreateCommand(g *globalOptions) *cobra.Command {
	var (
		name, memory string
		env          []string
		vf           vesselFlags
		asJSON       bool
	)
	c := &cobra.Command{
		Use:   "create --wasm MODULE.wasm [OPTIONS] -- [ARGS...]",
		Short: "Create and start a vessel pod (this build has no native pods)",
		Args:  cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if vf.wasm == "" {
				return errdefs.New(errdefs.Unsupported, "this podctl (%s) runs Wasm vessel pods only: use --wasm MODULE.wasm", buildTarget())
			}
			if len(args) > 0 && args[0] == "--" {
				args = args[1:]
			}
			if name == "" {
				name = generatedName()
			}
			return createVessel(c, g, name, vf, env, args, memory, asJSON)
		},
	}
	f := c.Flags()
	f.SetInterspersed(false)
	f.StringVar(&name, "name", "", "pod name (default: generated)")
	f.StringArrayVarP(&env, "env", "e", nil, "set KEY=VALUE in the guest's environment (repeatable)")
	f.StringVar(&memory, "memory", "", "cap the guest's memory, e.g. 256m")
	f.BoolVar(&asJSON, "json", false, "print the pod's manifest as JSON instead of its name")
	vf.register(c)
	return c
}

func vesselPsCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "ps",
		Short: "List pods",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			vessels, err := vesselRows(c.Context(), g)
			if err != nil {
				return err
			}
			if asJSON {
				all := []any{}
				for _, v := range vessels {
					all = append(all, v)
				}
				return writeJSON(c.OutOrStdout(), all)
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATUS\tIP\tPORTS\tCREATED\tCOMMAND")
			for _, v := range vessels {
				printVesselRow(tw, v)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// vesselNameCommand is a command taking one vessel pod name.
func vesselNameCommand(g *globalOptions, use, short string, run func(*cobra.Command, *globalOptions, string) error) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Args: exactArgs(1, "one pod name"),
		RunE: func(c *cobra.Command, args []string) error { return run(c, g, args[0]) },
	}
}

func vesselCheckpointCommand(g *globalOptions) *cobra.Command {
	var (
		output                         string
		leaveRunning, asJSON, portable bool
	)
	c := vesselNameCommand(g, "checkpoint [OPTIONS] POD", "Stop a vessel pod into a portable snapshot", func(c *cobra.Command, g *globalOptions, name string) error {
		rep, err := g.vessels().Handle(name).Checkpoint(c.Context(), handle.CheckpointOptions{Output: output, LeaveRunning: leaveRunning})
		return printReport(c, rep, err, asJSON)
	})
	// Every checkpoint of this build is portable; the flag is accepted so
	// that scripts work with every build.
	c.Flags().BoolVar(&portable, "portable", true, "write a portable snapshot (always, in this build)")
	c.Flags().StringVarP(&output, "output", "o", "", "write the snapshot to FILE (default: keep it in the pod's directory and leave the pod checkpointed)")
	c.Flags().BoolVar(&leaveRunning, "leave-running", false, "let the pod carry on after the checkpoint")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

func vesselRestoreCommand(g *globalOptions) *cobra.Command {
	var (
		name, memory string
		asJSON       bool
	)
	c := &cobra.Command{
		Use:   "restore [OPTIONS] FILE|POD",
		Short: "Restart a vessel pod from a snapshot or from its last checkpoint",
		Args:  exactArgs(1, "a snapshot file or a checkpointed pod's name"),
		RunE: func(c *cobra.Command, args []string) error {
			o := handle.RestoreOptions{Name: name}
			if memory != "" {
				var err error
				if o.MemoryLimit, err = size.Parse(memory); err != nil {
					return err
				}
			}
			src, err := g.vessels().OpenSource(args[0])
			if err != nil {
				return fmt.Errorf("%w, and this podctl (%s) restores vessels only", err, buildTarget())
			}
			rep, err := src.Restore(c.Context(), o)
			return printReport(c, rep, err, asJSON)
		},
	}
	c.Flags().StringVar(&name, "name", "", "name of the restored pod (default: the recorded name)")
	c.Flags().StringVar(&memory, "memory", "", "cap the guest's memory (e.g. 64m); a snapshot with more is refused")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

func vesselMigrateCommand(g *globalOptions) *cobra.Command {
	var (
		to, via string
		asJSON  bool
		tls     pkiFlags
	)
	c := &cobra.Command{
		Use:   "migrate [OPTIONS] POD --to ADDR",
		Short: "Move a running vessel pod to the dock at ADDR",
		Args:  exactArgs(1, "one pod name"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkDockAddr("--to", to); err != nil {
				return err
			}
			if err := migrate.CheckVia(args[0], handle.Vessel, via); err != nil {
				return err
			}
			client, err := dialDock(to, tls)
			if err != nil {
				return err
			}
			defer client.Close()
			res, err := migrate.Vessel(c.Context(), client, g.vessels(), args[0], migrate.Options{PKI: absPath(tls.dir), Cert: tls.name}, nil)
			return printMigration(c, res, err, asJSON)
		},
	}
	c.Flags().StringVar(&to, "to", "", "address (HOST:PORT) of the destination dock, whose certificate must be issued for HOST (pki issue --host)")
	c.Flags().StringVar(&via, "via", "auto", "migration path: wasm or auto")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	tls.register(c)
	return c
}

func vesselDockCommand(g *globalOptions) *cobra.Command {
	return newDockCommand("Receive migrating vessel pods (runs until interrupted)", func(dockOptions) (*migrate.Destination, error) {
		return migrate.VesselDestination(g.vessels()), nil
	})
}

// startVessel creates a vessel pod.
func (g *globalOptions) startVessel(ctx context.Context, o vesselpod.CreateOptions, module []byte) (any, error) {
	return g.vessels().Create(ctx, o, module)
}

// open finds the vessel pod name: this build has no other kind.
func (g *globalOptions) open(name string) (handle.Pod, error) {
	return g.vessels().Handle(name), nil
}
