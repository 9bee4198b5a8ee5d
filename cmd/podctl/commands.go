//go:build linux && cgo

package main

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/migrate"
	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/pod/housed"
)

// podCommands are this build's pod commands: native pods (namespaces,
// cgroups, CRIU) and, through the same commands, vessel pods.
func podCommands(g *globalOptions) []*cobra.Command {
	return []*cobra.Command{
		createCommand(g), execCommand(g), psCommand(g), inspectCommand(g),
		logsCommand(g), stopCommand(g), rmCommand(g),
		checkpointCommand(g), restoreCommand(g), migrateCommand(g), dockCommand(g), screenshotCommand(g),
		compareCommand(g), volumeCommand(g),
	}
}

// manager is the pod manager of the state root.
func (g *globalOptions) manager() (*pod.Manager, error) { return g.managerHiding() }

// managerHiding is the pod manager of the state root, whose pods see
// nothing of podctl's PKI: neither DefaultPKI's directory nor
// $PODCTL_PKI, nor pkiDirs (a dock's --pki).
func (g *globalOptions) managerHiding(pkiDirs ...string) (*pod.Manager, error) {
	if os.Geteuid() != 0 {
		return nil, errdefs.New(errdefs.NotRoot, "podctl must run as root")
	}
	hide := append([]string{filepath.Dir(DefaultPKI)}, pkiDirs...)
	if dir := os.Getenv(pkiEnv); dir != "" {
		hide = append(hide, dir)
	}
	for i, dir := range hide {
		if abs, err := filepath.Abs(dir); err == nil {
			hide[i] = abs
		}
	}
	return pod.NewManager(pod.Options{Root: g.root, Bridge: g.bridge, Subnet: g.subnet, Uplink: g.uplink, Hide: hide, Handovers: migrate.ResolveHandover})
}

func createCommand(g *globalOptions) *cobra.Command {
	var (
		spec          pod.Spec
		ports         []string
		memory        string
		pids          int64
		image         string
		printManifest bool
		vf            vesselFlags
		df            desktopFlags
		volumes       []string
	)
	c := &cobra.Command{
		Use:   "create [OPTIONS] -- CMD [ARGS...]",
		Short: "Create and start a pod",
		Args:  cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if df.desktop {
				name, app, err := desktopArgs(args, c.ArgsLenAtDash())
				if err != nil {
					return err
				}
				if name != "" && spec.Name != "" {
					return errdefs.New(errdefs.Usage, "podctl create --desktop: the pod is named twice (--name %s and %s)", spec.Name, name)
				}
				spec.Name, args = cmp.Or(spec.Name, name), app
			}
			if len(args) > 0 && args[0] == "--" {
				args = args[1:]
			}
			if spec.Name == "" {
				spec.Name = generatedName()
			}
			if vf.wasm != "" {
				if len(ports) > 0 || pids != 0 || image != pod.ImageHost || spec.Workdir != "" || spec.Network != "" || spec.Privileged || len(volumes) > 0 {
					return errdefs.New(errdefs.Usage, "podctl create --wasm: -p, -v, --pids, --image, --workdir, --network and --privileged are for native pods")
				}
				return createVessel(c, g, spec.Name, vf, spec.Env, args, memory, printManifest)
			}
			if len(vf.dirs) > 0 {
				return errdefs.New(errdefs.Usage, "podctl create: --dir is for vessel pods (--wasm)")
			}
			spec.Image = image
			if image != pod.ImageHost {
				abs, err := filepath.Abs(image)
				if err != nil {
					return errdefs.New(errdefs.InvalidImage, "image %s: %w", image, err)
				}
				spec.Image = abs
			}
			if df.desktop {
				if vf.wasm != "" {
					return errdefs.New(errdefs.Usage, "podctl create: --desktop and --wasm make different pods")
				}
				if err := df.apply(&spec, args); err != nil {
					return err
				}
			} else if df.set() {
				return errdefs.New(errdefs.Usage, "podctl create: --geometry and --vnc-password-file are for desktop pods (--desktop)")
			} else if len(args) == 0 {
				return errdefs.New(errdefs.Usage, "missing command: podctl create [OPTIONS] -- CMD [ARGS...]")
			} else {
				spec.Command = args
			}
			for _, p := range ports {
				port, err := pod.ParsePort(p)
				if err != nil {
					return err
				}
				spec.Ports = append(spec.Ports, port)
			}
			if memory != "" {
				n, err := pod.ParseSize(memory)
				if err != nil {
					return err
				}
				spec.MemoryLimit = n
			}
			if pids < 0 {
				return errdefs.New(errdefs.InvalidArgument, "invalid --pids %d: must be positive", pids)
			}
			for _, v := range volumes {
				vol, err := pod.ParseVolume(v)
				if err != nil {
					return err
				}
				spec.Volumes = append(spec.Volumes, vol)
			}
			spec.PidsLimit = pids
			m, err := g.manager()
			if err != nil {
				return err
			}
			man, err := m.Create(c.Context(), spec)
			if err != nil {
				return err
			}
			if printManifest {
				return writeJSON(c.OutOrStdout(), man)
			}
			fmt.Fprintln(c.OutOrStdout(), man.Spec.Name)
			return nil
		},
	}
	f := c.Flags()
	f.SetInterspersed(false)
	f.StringVar(&spec.Name, "name", "", "pod name (default: generated)")
	f.StringVar(&image, "image", pod.ImageHost, `root filesystem: "host" (a read-only view of the host's) or a directory`)
	f.StringArrayVarP(&ports, "publish", "p", nil, "publish HOSTPORT:PODPORT[/tcp|udp] (repeatable)")
	f.StringArrayVarP(&volumes, "volume", "v", nil, "mount the named volume NAME (made if missing) or the host directory /HOSTDIR at /PODDIR: NAME:/PODDIR[:ro] or /HOSTDIR:/PODDIR[:ro] (repeatable)")
	f.StringVar(&memory, "memory", "", "memory limit, e.g. 256m")
	f.Int64Var(&pids, "pids", 0, "maximum number of processes")
	f.StringArrayVarP(&spec.Env, "env", "e", nil, "set KEY=VALUE in the pod's environment (repeatable)")
	f.StringVarP(&spec.Workdir, "workdir", "w", "", "working directory of the command inside the pod")
	f.StringVar(&spec.Network, "network", "", "join the named network (pods on one network can reach each other; default: isolated)")
	f.BoolVar(&printManifest, "json", false, "print the pod's manifest as JSON instead of its name")
	f.BoolVar(&spec.Privileged, "privileged", false, "DANGEROUS: the pod's root is the host's root: every capability, no seccomp filter, no masked or read-only /proc paths, no no_new_privs (namespaces only; such a pod cannot migrate)")
	vf.register(c)
	df.register(c)
	return c
}

func execCommand(g *globalOptions) *cobra.Command {
	var (
		interactive, tty bool
		o                pod.ExecOptions
	)
	c := &cobra.Command{
		Use:   "exec [OPTIONS] POD -- CMD [ARGS...]",
		Short: "Run a command inside a running pod",
		Args:  cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errdefs.New(errdefs.Usage, "missing pod: podctl exec [OPTIONS] POD -- CMD [ARGS...]")
			}
			name, rest := args[0], args[1:]
			p, err := g.open(name)
			if err != nil {
				return err
			}
			ex, ok := p.(execer)
			if !ok {
				return errdefs.New(errdefs.Unsupported, "pod %s is a Wasm vessel: it has no processes to run a command in", name)
			}
			if len(rest) > 0 && rest[0] == "--" {
				rest = rest[1:]
			}
			o.Command = rest
			o.Stdout, o.Stderr = c.OutOrStdout(), c.ErrOrStderr()
			if interactive || tty {
				o.Stdin = c.InOrStdin()
			}
			o.TTY = tty
			code, err := ex.Exec(c.Context(), o)
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	f := c.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&interactive, "interactive", "i", false, "keep standard input open")
	f.BoolVarP(&tty, "tty", "t", false, "allocate a terminal")
	f.StringArrayVarP(&o.Env, "env", "e", nil, "set KEY=VALUE (repeatable)")
	f.StringVarP(&o.Workdir, "workdir", "w", "", "working directory inside the pod")
	return c
}

func psCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "ps",
		Short: "List pods",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			m, err := g.manager()
			if err != nil {
				return err
			}
			pods, err := housed.List(c.Context(), m, migrate.ResolveHandover)
			if err != nil {
				return err
			}
			vessels, err := vesselRows(c.Context(), g)
			if err != nil {
				return err
			}
			if asJSON {
				all := []any{}
				for _, p := range pods {
					all = append(all, p)
				}
				for _, v := range vessels {
					all = append(all, v)
				}
				return writeJSON(c.OutOrStdout(), all)
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATUS\tIP\tPORTS\tCREATED\tCOMMAND")
			for _, p := range pods {
				status := p.Status
				if p.ExitCode != nil {
					status = fmt.Sprintf("exited (%d)", *p.ExitCode)
				}
				var ports []string
				for _, pt := range p.Spec.Ports {
					ports = append(ports, pt.String())
				}
				ip := ""
				if p.Endpoint.IP.IsValid() {
					ip = p.Endpoint.IP.String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Spec.Name, status, ip, strings.Join(ports, ","),
					ago(p.CreatedAt), truncate(p.Spec.CommandLine(), 40))
			}
			for _, v := range vessels {
				printVesselRow(tw, v)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
