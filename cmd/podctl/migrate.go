//go:build linux && cgo

package main

import (
	"github.com/spf13/cobra"

	"github.com/podctl/podctl/internal/names"
	"github.com/podctl/podctl/migrate"
	"github.com/podctl/podctl/pod"
)

func migrateCommand(g *globalOptions) *cobra.Command {
	var (
		to, via, name string
		live, force   bool
		asJSON        bool
		tls           pkiFlags
	)
	c := &cobra.Command{
		Use:   "migrate [OPTIONS] POD --to ADDR",
		Short: "Move a running pod to the dock at ADDR",
		Args:  exactArgs(1, "one pod name"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkDockAddr("--to", to); err != nil {
				return err
			}
			opts := migrate.Options{Name: name, Live: live, Force: force, PKI: absPath(tls.dir), Cert: tls.name}
			if name != "" {
				if err := names.Validate(name); err != nil {
					return err
				}
			}
			p, err := g.open(args[0])
			if err != nil {
				return err
			}
			if err := migrate.CheckVia(args[0], p.Kind(), via); err != nil {
				return err
			}
			client, err := dialDock(to, tls)
			if err != nil {
				return err
			}
			defer client.Close()
			bar := newProgressBar(c.ErrOrStderr())
			if bar != nil {
				opts.Progress = bar.update
			}
			res, err := migrate.Pod(c.Context(), p, client, via, opts)
			bar.finish()
			return printMigration(c, res, err, asJSON)
		},
	}
	c.Flags().StringVar(&to, "to", "", "address (HOST:PORT) of the destination dock, whose certificate must be issued for HOST (pki issue --host)")
	c.Flags().StringVar(&via, "via", "auto", "migration path: criu, wasm or auto (criu on a dock of this host's ISA, the portable snapshot of a Wasm vessel on any other)")
	c.Flags().BoolVar(&live, "live", false, "post-copy: resume the pod at the destination before its memory has arrived")
	c.Flags().StringVar(&name, "name", "", "name of the pod at the destination (default: unchanged)")
	c.Flags().BoolVar(&force, "force", false, "migrate even if the destination's CPU lacks features of this host's")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	tls.register(c)
	return c
}

func dockCommand(g *globalOptions) *cobra.Command {
	return newDockCommand("Receive migrating pods (runs until interrupted)", func(o dockOptions) (*migrate.Destination, error) {
		m, err := g.managerHiding(o.pkiDir)
		if err != nil {
			return nil, err
		}
		return migrate.NativeDestination(m, g.vessels(), pod.ImagePolicy{Roots: o.imageRoots}), nil
	})
}
