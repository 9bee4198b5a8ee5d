package main

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/podctl/podctl/internal/doctor"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/human"
	"github.com/podctl/podctl/internal/pki"
	"github.com/podctl/podctl/internal/size"
	"github.com/podctl/podctl/migrate"
	"github.com/spf13/cobra"
)

// DefaultRoot is podctl's default state directory (pod.DefaultRoot).
const DefaultRoot = "/var/lib/podctl"

// globalOptions are the flags every command shares.
type globalOptions struct {
	root, bridge, subnet, uplink string
}

func newRootCommand() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:           "podctl",
		Short:         "Pods of processes that can be checkpointed, restored and migrated",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	defaultRoot := os.Getenv("PODCTL_ROOT")
	if defaultRoot == "" {
		defaultRoot = DefaultRoot
	}
	root.PersistentFlags().StringVar(&g.root, "root", defaultRoot, "state directory (env PODCTL_ROOT)")
	root.PersistentFlags().StringVar(&g.bridge, "bridge", "", "bridge of the default pod network, when it is created (default podbr0)")
	root.PersistentFlags().StringVar(&g.subnet, "subnet", "", "subnet of the default pod network, when it is created (default 10.88.0.0/16)")
	root.PersistentFlags().StringVar(&g.uplink, "uplink", os.Getenv("PODCTL_UPLINK"), "host interface to bridge into the default pod network, when it is created (env PODCTL_UPLINK)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return errdefs.New(errdefs.Usage, "%s (see podctl %s --help)", err, c.Name())
	})
	root.AddCommand(podCommands(g)...)
	root.AddCommand(doctorCommand(g), pkiCommand(), sessionCommand())
	return root
}

// exactArgs is cobra.ExactArgs with a usage-classified error.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return errdefs.New(errdefs.Usage, "podctl %s: expected %s", c.Name(), what)
		}
		return nil
	}
}

func doctorCommand(g *globalOptions) *cobra.Command {
	var (
		asJSON bool
		criu   string
	)
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check that this machine has everything podctl needs",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			self, _ := os.Executable()
			r := doctor.Run(c.Context(), doctor.Options{SelfExe: self, CRIUPath: criu, VesselsOnly: !nativeBuild, Private: []string{g.root, defaultPKIDir()}})
			var err error
			if asJSON {
				err = r.WriteJSON(c.OutOrStdout())
			} else {
				err = r.WriteTable(c.OutOrStdout())
			}
			if err != nil {
				return err
			}
			if !r.OK() {
				fmt.Fprintln(c.ErrOrStderr(), "podctl: doctor: required features are missing (see FIX above)")
				return &exitError{code: int(errdefs.Unsupported)}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().StringVar(&criu, "criu", "", "CRIU binary to check (default: criu on PATH)")
	return c
}

// DefaultPKI is where docks and migrate look for their TLS material.
const DefaultPKI = "/etc/podctl/pki"

// defaultPKIDir is where --pki points unless told otherwise.
func defaultPKIDir() string { return cmp.Or(os.Getenv(pkiEnv), DefaultPKI) }

// pkiEnv names the environment variable that moves DefaultPKI.
const pkiEnv = "PODCTL_PKI"

// pkiFlags are the TLS options of dock and migrate.
type pkiFlags struct{ dir, name string }

func (p *pkiFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&p.dir, "pki", defaultPKIDir(), "directory with ca.pem, revoked.txt and this node's certificate (env PODCTL_PKI; see podctl pki)")
	c.Flags().StringVar(&p.name, "cert", "node", "name of this node's certificate in the --pki directory (NAME.pem, NAME-key.pem)")
}

func pkiCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "pki",
		Short: "Create and revoke the certificates docks and migrate authenticate each other with",
	}
	initCmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Create a certificate authority in DIR",
		Args:  exactArgs(1, "a directory"),
		RunE:  func(c *cobra.Command, args []string) error { return pki.Init(args[0]) },
	}
	var hosts []string
	issue := &cobra.Command{
		Use:   "issue DIR NAME",
		Short: "Issue a node certificate NAME signed by DIR's authority",
		Args:  exactArgs(2, "a directory and a certificate name"),
		RunE:  func(c *cobra.Command, args []string) error { return pki.Issue(args[0], args[1], hosts) },
	}
	issue.Flags().StringSliceVar(&hosts, "host", nil, "DNS name or IP address the node is reached at (repeatable): migrate --to HOST:PORT takes its dock only if HOST is one of them")
	revoke := &cobra.Command{
		Use:   "revoke DIR NAME",
		Short: "Revoke the certificate NAME.pem in DIR: docks and migrate refuse it",
		Long: `Revoke adds the serial number of the certificate in DIR/NAME.pem to
DIR/revoked.txt. Docks and migrate refuse a certificate listed in the
revoked.txt of their --pki directory, at the handshake; a running dock
reads the list again when it changes. Copy revoked.txt to every node's
PKI directory, like ca.pem. Revoke before issuing NAME anew, which
replaces NAME.pem.`,
		Args: exactArgs(2, "a directory and a certificate name"),
		RunE: func(c *cobra.Command, args []string) error { return pki.Revoke(args[0], args[1]) },
	}
	c.AddCommand(initCmd, issue, revoke)
	return c
}

// progressBar draws a migration's progress on a terminal.
type progressBar struct {
	mu sync.Mutex
	w  io.Writer
	ph string
}

// newProgressBar returns a bar drawing on w, or nil if w is not a terminal.
func newProgressBar(w io.Writer) *progressBar {
	f, ok := w.(*os.File)
	if !ok || !isTerminal(f) {
		return nil
	}
	return &progressBar{w: w}
}

func (b *progressBar) update(phase string, sent, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if phase != "" {
		b.ph = phase
	}
	const width = 30
	fill := width
	if total > 0 && sent < total {
		fill = int(sent * width / total)
	}
	fmt.Fprintf(b.w, "\r%-9s [%s%s] %10s", b.ph, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), human.Bytes(sent))
}

func (b *progressBar) finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprint(b.w, "\r\033[K")
}
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func ago(t time.Time) string {
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Local().Format("2006-01-02")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// generatedName is a new pod's name when none is given: "pod-" and 8 hex
// digits.
func generatedName() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "pod-" + hex.EncodeToString(b)
}

// buildTarget is this binary's OS/ISA.
func buildTarget() string { return runtime.GOOS + "/" + runtime.GOARCH }

// newDockCommand is `podctl dock`, serving the destination that
// destination returns.
func newDockCommand(short string, destination func(dockOptions) (*migrate.Destination, error)) *cobra.Command {
	var (
		listen       string
		tls          pkiFlags
		images       []string
		memory, disk string
	)
	c := &cobra.Command{
		Use:   "dock [OPTIONS]",
		Short: short,
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			o := dockOptions{pkiDir: tls.dir, imageRoots: images}
			var err error
			if o.budgets.Memory, err = parseBudget("--memory-budget", memory); err != nil {
				return err
			}
			if o.budgets.Disk, err = parseBudget("--disk-budget", disk); err != nil {
				return err
			}
			d, err := destination(o)
			if err != nil {
				return err
			}
			d.Budgets = o.budgets
			cfg, err := pki.ServerConfig(tls.dir, tls.name)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return errdefs.New(errdefs.Conflict, "dock: listen on %s: %v", listen, err)
			}
			return d.Serve(c.Context(), ln, cfg, slog.New(slog.NewTextHandler(c.ErrOrStderr(), nil)))
		},
	}
	c.Flags().StringVar(&listen, "listen", ":7070", "address to listen on")
	c.Flags().StringArrayVar(&images, "images", nil, "directory whose subdirectories are images received pods may have (repeatable; the host image is always served)")
	c.Flags().StringVar(&memory, "memory-budget", "", "memory all receives in progress may use together, e.g. 2GiB; a receive that cannot get its share within 2s is refused as busy (default: a quarter of this machine's memory or of the dock's cgroup limit, at least 256MiB)")
	c.Flags().StringVar(&disk, "disk-budget", "", "disk space the dock fills for its peers: three quarters for receives in progress, a quarter for the cache of received Wasm modules, least recently used evicted first (default: half the free space under --root, at least 1GiB)")
	tls.register(c)
	return c
}

// parseBudget parses the value of a budget's flag: a size, or "" for the
// default (0).
func parseBudget(flag, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := size.Parse(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", flag, err) // InvalidArgument, like --memory's
	}
	return n, nil
}

// dockOptions are what a dock's command line says about its destination.
type dockOptions struct {
	// pkiDir is the dock's --pki, which no pod may see.
	pkiDir string
	// imageRoots are the dock's --images.
	imageRoots []string
	// budgets are the dock's --memory-budget and --disk-budget (zero:
	// the defaults, which migrate.Destination works out).
	budgets migrate.Budgets
}

// newRmCommand is `podctl rm [-f] [--volumes] POD...`, removing each pod
// with remove.
func newRmCommand(remove func(c *cobra.Command, name string, o rmOptions) error) *cobra.Command {
	var o rmOptions
	c := &cobra.Command{
		Use:   "rm [-f] [--volumes] POD...",
		Short: "Remove pods and everything they have",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errdefs.New(errdefs.Usage, "podctl rm: expected at least one pod name")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return forEach(args, func(name string) error { return remove(c, name, o) })
		},
	}
	c.Flags().BoolVarP(&o.force, "force", "f", false, "kill the pod if it is running")
	c.Flags().BoolVar(&o.volumes, "volumes", false, "also remove the pod's named volumes that no other pod mounts")
	return c
}

// rmOptions are rm's flags.
type rmOptions struct{ force, volumes bool }

// forEach calls f with each name and goes on after a failure: it returns
// the first error and reports the others, one line each, as rm does.
func forEach(names []string, f func(name string) error) error {
	var firstErr error
	for _, name := range names {
		if err := f(name); err != nil {
			if firstErr != nil {
				report(err)
				continue
			}
			firstErr = err
		}
	}
	return firstErr
}

// checkDockAddr validates migrate's --to.
func checkDockAddr(flag, addr string) error {
	if addr == "" {
		return errdefs.New(errdefs.Usage, "%s ADDR is required", flag)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return errdefs.New(errdefs.InvalidArgument, "invalid %s %q: want HOST:PORT", flag, addr)
	}
	return nil
}

// absPath is path made absolute, or path itself if that fails.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}
