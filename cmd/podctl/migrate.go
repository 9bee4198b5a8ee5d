//go:build linux && cgo

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/podctl/podctl/internal/dock"
	"github.com/podctl/podctl/migrate"
	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/pod/housed"
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
					return printVesselMigration(c, res, err, asJSON)
				}
				res, err := migrate.HousedVessel(c.Context(), client, m, house, name)
				return printVesselMigration(c, res, err, asJSON)
			}
			o := dock.MigrateOptions{Live: live, Name: name, Force: force}
			bar := newProgressBar(c.ErrOrStderr())
			if bar != nil {
				o.Progress = bar.update
			}
			res, err := dock.Migrate(c.Context(), m, args[0], client, o)
			bar.finish()
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), res)
			}
			w := c.OutOrStdout()
			fmt.Fprintf(w, "%s (%s) migrated to %s via %s\n", res.Pod, res.IP, res.Dock, res.Mode)
			fmt.Fprintf(w, "  freeze   %s\n  dump     %s\n  transfer %s\n  restore  %s\n", ms(res.Freeze), ms(res.Dump), ms(res.Transfer), ms(res.Restore))
			if res.PostCopy > 0 {
				fmt.Fprintf(w, "  postcopy %s\n", ms(res.PostCopy))
			}
			fmt.Fprintf(w, "  total    %s\n  downtime %s\n  sent     %s (archive %s, memory %s)\n", ms(res.Total), ms(res.Downtime),
				byteSize(res.ArchiveBytes+res.PageBytes), byteSize(res.ArchiveBytes), byteSize(res.PageBytes))
			return nil
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
	var (
		listen string
		tls    pkiFlags
	)
	c := &cobra.Command{
		Use:   "dock [OPTIONS]",
		Short: "Receive migrating pods (runs until interrupted)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			m, err := g.manager()
			if err != nil {
				return err
			}
			recover := func() error {
				if err := m.Recover(c.Context()); err != nil {
					return err
				}
				return housed.Recover(c.Context(), m)
			}
			return serveDock(c, g, &dock.Native{Manager: m}, g.dockVessels(m), listen, tls, recover)
		},
	}
	c.Flags().StringVar(&listen, "listen", ":7070", "address to listen on")
	tls.register(c)
	return c
}
