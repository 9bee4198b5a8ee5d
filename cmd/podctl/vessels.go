package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/podctl/podctl/dock"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/human"
	"github.com/podctl/podctl/internal/pki"
	"github.com/podctl/podctl/internal/size"
	"github.com/podctl/podctl/migrate"
	"github.com/podctl/podctl/pod/handle"
	"github.com/podctl/podctl/pod/vesselpod"
)

// The vessel side of the pod commands, shared by every build: builds with
// native pods dispatch here for vessel pods, the others have nothing else.

func (g *globalOptions) vessels() vesselpod.Store {
	return vesselpod.Store{Root: g.root, Handovers: migrate.ResolveHandover}
}

// vesselFlags are create's vessel options.
type vesselFlags struct {
	wasm string
	dirs []string
}

func (v *vesselFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&v.wasm, "wasm", "", "run the WebAssembly (WASI) module MODULE.wasm as the pod's payload: a vessel pod, which can migrate to any ISA")
	c.Flags().StringArrayVar(&v.dirs, "dir", nil, "vessel pods: preopen a copy of HOSTDIR at GUESTDIR, as HOSTDIR:GUESTDIR (repeatable)")
}

// createVessel is `podctl create --wasm MODULE [--dir H:G]... [-e K=V]... -- ARGS...`.
func createVessel(c *cobra.Command, g *globalOptions, name string, v vesselFlags, env, args []string, memory string, asJSON bool) error {
	module, err := os.ReadFile(v.wasm)
	if err != nil {
		return errdefs.New(errdefs.InvalidArgument, "--wasm %s: %v", v.wasm, err)
	}
	o := vesselpod.CreateOptions{Name: name, Module: v.wasm, Args: args, Env: env}
	if memory != "" {
		if o.MemoryLimit, err = size.Parse(memory); err != nil {
			return err
		}
	}
	for _, d := range v.dirs {
		host, guest, ok := strings.Cut(d, ":")
		if !ok || host == "" || guest == "" {
			return errdefs.New(errdefs.InvalidArgument, "invalid --dir %q: want HOSTDIR:GUESTDIR", d)
		}
		abs, err := filepath.Abs(host)
		if err != nil {
			return errdefs.New(errdefs.InvalidArgument, "invalid --dir %q: %v", d, err)
		}
		o.Dirs = append(o.Dirs, vesselpod.DirMap{Host: abs, Guest: guest})
	}
	for _, e := range env {
		if !strings.Contains(e, "=") {
			return errdefs.New(errdefs.InvalidArgument, "invalid environment entry %q: want KEY=VALUE", e)
		}
	}
	m, err := g.startVessel(c.Context(), o, module)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(c.OutOrStdout(), m)
	}
	fmt.Fprintln(c.OutOrStdout(), o.Name)
	return nil
}

// vesselRows are `podctl ps` rows for the vessel pods.
func vesselRows(ctx context.Context, g *globalOptions) ([]*vesselpod.Status, error) {
	return g.vessels().List(ctx)
}

// printVesselRow writes one vessel pod as a ps row (NAME STATUS IP PORTS
// CREATED COMMAND).
func printVesselRow(w io.Writer, v *vesselpod.Status) {
	status := v.Status
	if v.ExitCode != nil {
		status = fmt.Sprintf("exited (%d)", *v.ExitCode)
	}
	cmd := "wasm:" + strings.Join(v.Spec.Args, " ")
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Spec.Name, status, "-", "", ago(v.Created), truncate(cmd, 40))
}

// printReport prints what a checkpoint or restore did.
func printReport(c *cobra.Command, rep handle.Report, err error, asJSON bool) error {
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(c.OutOrStdout(), rep)
	}
	fmt.Fprintln(c.OutOrStdout(), rep)
	return nil
}

// printMigration prints the outcome of `podctl migrate`, whichever route
// it took.
func printMigration(c *cobra.Command, res *migrate.Result, err error, asJSON bool) error {
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(c.OutOrStdout(), res)
	}
	w := c.OutOrStdout()
	if res.CRIUResult != nil {
		fmt.Fprintf(w, "%s (%s) migrated to %s via %s\n", res.Pod, res.IP, res.Dock, res.Mode)
		fmt.Fprintf(w, "  freeze   %s\n  dump     %s\n  transfer %s\n  restore  %s\n", human.Millis(res.Freeze), human.Millis(res.Dump), human.Millis(res.Transfer), human.Millis(res.Restore))
		if res.PostCopy > 0 {
			fmt.Fprintf(w, "  postcopy %s\n", human.Millis(res.PostCopy))
		}
		fmt.Fprintf(w, "  total    %s\n  downtime %s\n  sent     %s (archive %s, memory %s)\n  session  %s\n", human.Millis(res.Total), human.Millis(res.Downtime),
			human.Bytes(res.ArchiveBytes+res.PageBytes), human.Bytes(res.ArchiveBytes), human.Bytes(res.PageBytes), res.Session)
		return nil
	}
	fmt.Fprintf(w, "%s migrated to %s (%s) via wasm\n", res.Pod, res.Dock, res.ISA)
	fmt.Fprintf(w, "  safepoint %s\n  capture   %s\n  write     %s\n  transfer  %s\n  restore   %s\n  total     %s\n  downtime  %s\n  sent      %s (module %s)\n  session   %s\n",
		human.Millis(res.Safepoint), human.Millis(res.Capture), human.Millis(res.Write), human.Millis(res.Transfer), human.Millis(res.Restore), human.Millis(res.Total), human.Millis(res.Downtime),
		human.Bytes(res.Bytes), map[bool]string{true: "included", false: "already at the dock"}[res.WithModule], res.Session)
	return nil
}

// dialDock returns a client of the dock at addr.
func dialDock(addr string, tls pkiFlags) (*dock.Client, error) {
	cfg, err := pki.ClientConfig(tls.dir, tls.name)
	if err != nil {
		return nil, err
	}
	return dock.NewClient(addr, cfg), nil
}
