//go:build linux && cgo

package main

import (
	"github.com/spf13/cobra"

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
			if err := checkDockAddr(to); err != nil {
				return err
			}
			opts := migrate.Options{Name: name, Live: live, Force: force}
			if name != "" {
				if err := pod.ValidateName(name); err != nil {
					return err
				}
			}
			var (
				m     *pod.Manager
				house *pod.Manifest
				kind  = migrate.KindVessel
			)
			if !g.isVessel(args[0]) {
				var err error
				if m, err = g.manager(); err != nil {
					return err
				}
				var isHoused bool
				kind = migrate.KindNative
				if house, _, isHoused = houseOf(c.Context(), m, args[0]); isHoused {
					kind = migrate.KindHoused
				}
			}
			if err := migrate.CheckVia(args[0], kind, via); err != nil {
				return err
			}
			client, err := dialDock(to, tls)
			if err != nil {
				return err
			}
			defer client.Close()
			route, err := migrate.ChooseRoute(c.Context(), args[0], kind, via, client.ISA)
			if err != nil {
				return err
			}
			if err := opts.Check(kind, route); err != nil {
				return err
			}
			if route == migrate.RouteSnapshot {
				if kind == migrate.KindVessel {
					res, err := migrate.Vessel(c.Context(), client, g.vessels(), args[0], args[0], nil)
					return printMigration(c, res, err, asJSON)
				}
				res, err := migrate.HousedVessel(c.Context(), client, m, house, name)
				return printMigration(c, res, err, asJSON)
			}
			bar := newProgressBar(c.ErrOrStderr())
			if bar != nil {
				opts.Progress = bar.update
			}
			res, err := migrate.Native(c.Context(), m, args[0], client, opts)
			bar.finish()
			return printMigration(c, res, err, asJSON)
		},
	}
	c.Flags().StringVar(&to, "to", "", "address (HOST:PORT) of the destination dock")
	c.Flags().StringVar(&via, "via", "auto", "migration path: criu, wasm or auto (criu on a dock of this host's ISA, the portable snapshot of a Wasm vessel on any other)")
	c.Flags().BoolVar(&live, "live", false, "post-copy: resume the pod at the destination before its memory has arrived")
	c.Flags().StringVar(&name, "name", "", "name of the pod at the destination (default: unchanged)")
	c.Flags().BoolVar(&force, "force", false, "migrate even if the destination's CPU lacks features of this host's")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	tls.register(c)
	return c
}

func dockCommand(g *globalOptions) *cobra.Command {
	return newDockCommand("Receive migrating pods (runs until interrupted)", func() (*migrate.Destination, error) {
		m, err := g.manager()
		if err != nil {
			return nil, err
		}
		return migrate.NativeDestination(m, g.vessels()), nil
	})
}
