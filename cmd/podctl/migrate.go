package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/internal/dock"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/pki"
	"github.com/podctl/podctl/pod"
)

// DefaultPKI is where docks and migrate look for their TLS material.
const DefaultPKI = "/etc/podctl/pki"

// pkiFlags are the TLS options of dock and migrate.
type pkiFlags struct{ dir, name string }

func (p *pkiFlags) register(c *cobra.Command) {
	def := os.Getenv("PODCTL_PKI")
	if def == "" {
		def = DefaultPKI
	}
	c.Flags().StringVar(&p.dir, "pki", def, "directory with ca.pem and this node's certificate (env PODCTL_PKI; see podctl pki)")
	c.Flags().StringVar(&p.name, "cert", "node", "name of this node's certificate in the --pki directory (NAME.pem, NAME-key.pem)")
}

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
			if to == "" {
				return errdefs.New(errdefs.Usage, "podctl migrate: --to ADDR is required")
			}
			if _, _, err := net.SplitHostPort(to); err != nil {
				return errdefs.New(errdefs.InvalidArgument, "invalid --to %q: want HOST:PORT", to)
			}
			switch via {
			case "auto", "criu":
			case "wasm":
				return errdefs.New(errdefs.Unsupported, "pod %s is a native pod, not a Wasm vessel: it can only migrate through CRIU", args[0])
			default:
				return errdefs.New(errdefs.InvalidArgument, "invalid --via %q: want criu, wasm or auto", via)
			}
			if name != "" {
				if err := pod.ValidateName(name); err != nil {
					return err
				}
			}
			m, err := g.manager()
			if err != nil {
				return err
			}
			cfg, err := pki.ClientConfig(tls.dir, tls.name)
			if err != nil {
				return err
			}
			client := dock.NewClient(to, cfg)
			defer client.Close()
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
	c.Flags().StringVar(&via, "via", "auto", "migration path: criu, wasm or auto (criu for native pods on a dock of the same ISA)")
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
			cfg, err := pki.ServerConfig(tls.dir, tls.name)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return errdefs.New(errdefs.Conflict, "dock: listen on %s: %v", listen, err)
			}
			// Finish what a dock that died left half received.
			if err := m.Recover(c.Context()); err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(c.ErrOrStderr(), nil))
			log.Info("dock listening", "addr", ln.Addr().String(), "root", g.root)
			s := &dock.Server{Native: &dock.Native{Manager: m}, TLS: cfg, Log: log}
			return s.Serve(c.Context(), ln)
		},
	}
	c.Flags().StringVar(&listen, "listen", ":7070", "address to listen on")
	tls.register(c)
	return c
}

func pkiCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "pki",
		Short: "Create the certificates docks and migrate authenticate each other with",
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
	issue.Flags().StringSliceVar(&hosts, "host", nil, "DNS name or IP address the node is reached at (repeatable)")
	c.AddCommand(initCmd, issue)
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
	if !ok {
		return nil
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
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
	fmt.Fprintf(b.w, "\r%-9s [%s%s] %10s", b.ph, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), byteSize(sent))
}

func (b *progressBar) finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprint(b.w, "\r\033[K")
}
