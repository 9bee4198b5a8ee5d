//go:build linux && cgo

package main

import (
	"bytes"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/names"
	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/pod/desktop"
)

// desktopFlags are create's flags for desktop pods.
type desktopFlags struct {
	desktop      bool
	geometry     string
	passwordFile string
}

func (d *desktopFlags) register(c *cobra.Command) {
	f := c.Flags()
	f.BoolVar(&d.desktop, "desktop", false, "a desktop pod: an X session on VNC (port 5900) and noVNC (5800), with a terminal, a clock and the optional APP (podctl create --desktop [NAME] [-- APP ARGS...])")
	f.StringVar(&d.geometry, "geometry", "", "desktop screen size, WIDTHxHEIGHT (default "+desktop.DefaultGeometry+")")
	f.StringVar(&d.passwordFile, "vnc-password-file", "", "file whose first line is the desktop's VNC password (default: generated; podctl inspect shows it)")
}

// set reports whether a desktop-only flag was given.
func (d *desktopFlags) set() bool { return d.geometry != "" || d.passwordFile != "" }

// desktopArgs splits create's arguments for a desktop pod, [NAME] [--
// APP ARGS...], into the name (empty if not given) and the application.
// dashAt is where cobra saw "--" (-1: nowhere, when a NAME came first).
func desktopArgs(args []string, dashAt int) (name string, app []string, err error) {
	if dashAt < 0 {
		dashAt = len(args)
		for i, a := range args {
			if a == "--" {
				dashAt, args = i, append(append([]string{}, args[:i]...), args[i+1:]...)
				break
			}
		}
	}
	switch dashAt {
	case 0:
		return "", args, nil
	case 1:
		if err := names.Validate(args[0]); err != nil {
			return "", nil, err
		}
		return args[0], args[1:], nil
	}
	return "", nil, errdefs.New(errdefs.Usage, "podctl create --desktop [NAME] [-- APP ARGS...]: %s before --: want one name", strings.Join(args[:dashAt], " "))
}

// apply makes spec a desktop pod's, running app on the desktop.
func (d *desktopFlags) apply(spec *pod.Spec, app []string) error {
	o := desktop.Options{Geometry: d.geometry, App: app}
	if d.passwordFile != "" {
		b, err := os.ReadFile(d.passwordFile)
		if err != nil {
			return errdefs.New(errdefs.InvalidArgument, "--vnc-password-file: %v", err)
		}
		o.Password, _, _ = strings.Cut(string(b), "\n")
	}
	root := spec.Image
	if root == pod.ImageHost {
		root = "/"
	}
	argv, env, session, err := desktop.Command(o, root)
	if err != nil {
		return err
	}
	spec.Command, spec.Env, spec.Desktop = argv, append(spec.Env, env...), session
	return nil
}

func screenshotCommand(g *globalOptions) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:     "screenshot POD -o FILE.png",
		Short:   "Save what a desktop pod's screen shows, as a PNG",
		Example: "  podctl screenshot desk -o desk.png",
		Args:    exactArgs(1, "one pod name"),
		RunE: func(c *cobra.Command, args []string) error {
			if out == "" {
				return errdefs.New(errdefs.Usage, "podctl screenshot: -o FILE.png is required")
			}
			m, err := g.manager()
			if err != nil {
				return err
			}
			man, err := m.Manifest(args[0])
			if err != nil {
				return err
			}
			if man.Spec.Desktop == nil {
				return errdefs.New(errdefs.InvalidArgument, "pod %s is not a desktop pod (podctl create --desktop)", args[0])
			}
			var png bytes.Buffer
			if err := desktop.Screenshot(c.Context(), m.Handle(args[0]), &png); err != nil {
				return err
			}
			return os.WriteFile(out, png.Bytes(), 0o644)
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "PNG file to write")
	return c
}
