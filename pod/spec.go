// Package pod is podctl's pod model: what a pod is (Spec), what podctl
// remembers about it (Manifest), where that is kept (Store), and the
// lifecycle operations that create, enter, stop and remove pods (Manager).
// The kernel-facing work is done by package virtns.
package pod

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/names"
	"github.com/podctl/podctl/internal/size"
)

// ImageHost is the image name that gives a pod a read-only view of the
// host's own root filesystem.
const ImageHost = "host"

// Spec is everything a user asks for when creating a pod. It is stored in
// the pod's manifest and travels with the pod when it migrates.
type Spec struct {
	// Name is the pod's name, also its hostname.
	Name string `json:"name"`
	// Image is ImageHost or an absolute path to a root filesystem directory.
	Image string `json:"image"`
	// Command is the pod's payload: argv of the process the pod init starts.
	Command []string `json:"command"`
	// Env holds extra environment variables, KEY=VALUE.
	Env []string `json:"env,omitempty"`
	// Workdir is the payload's working directory inside the pod.
	Workdir string `json:"workdir,omitempty"`
	// Ports are the host ports published to the pod.
	Ports []Port `json:"ports,omitempty"`
	// MemoryLimit is the cgroup memory limit in bytes; 0 means none.
	MemoryLimit int64 `json:"memoryLimit,omitempty"`
	// PidsLimit is the cgroup pids limit; 0 means none.
	PidsLimit int64 `json:"pidsLimit,omitempty"`
	// Network is the name of the network the pod joins; "" is the default,
	// isolated network.
	Network string `json:"network,omitempty"`
	// Vessel, when set, makes the pod the house of a Wasm vessel (see
	// package housed): its payload is the vessel's supervisor, run by
	// the podctl binary bind-mounted at virtns.PodctlPath.
	Vessel *VesselRef `json:"vessel,omitempty"`
	// Privileged lifts the pod's confinement: every capability, no
	// seccomp filter, no masked or read-only paths, no no_new_privs (see
	// virtns.PodConfig.Privileged). A dock never receives such a pod.
	Privileged bool `json:"privileged,omitempty"`
	// Desktop, when set, makes the pod a desktop pod (package desktop):
	// its payload is an X session served over VNC and noVNC.
	Desktop *Desktop `json:"desktop,omitempty"`
	// Volumes are directories mounted into the pod: named volumes, kept
	// under the state root and created on first use, and host
	// directories.
	Volumes []VolumeMount `json:"volumes,omitempty"`
}

// VolumeMount is one directory mounted into a pod: the named volume Name,
// or, if Name is empty, the host directory Source.
type VolumeMount struct {
	Name        string `json:"name,omitempty"`
	Source      string `json:"source,omitempty"`
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
}

func (v VolumeMount) String() string {
	s := cmp.Or(v.Name, v.Source) + ":" + v.Destination
	if v.ReadOnly {
		s += ":ro"
	}
	return s
}

// ParseVolume parses a -v argument: NAME:/PODDIR or /HOSTDIR:/PODDIR,
// either followed by :ro or :rw (the default), as podman's -v.
func ParseVolume(s string) (VolumeMount, error) {
	bad := func(why string) (VolumeMount, error) {
		return VolumeMount{}, errdefs.New(errdefs.InvalidArgument, "invalid volume %q: %s (want NAME:/PODDIR[:ro] or /HOSTDIR:/PODDIR[:ro])", s, why)
	}
	parts := strings.Split(s, ":")
	var v VolumeMount
	switch len(parts) {
	case 3:
		switch parts[2] {
		case "ro":
			v.ReadOnly = true
		case "rw":
		default:
			return bad("the option must be ro or rw")
		}
	case 2:
	default:
		return bad("missing ':'")
	}
	src, dst := parts[0], parts[1]
	if strings.HasPrefix(src, "/") {
		v.Source = filepath.Clean(src)
	} else {
		if names.Validate(src) != nil {
			return bad("a volume's name is 1-63 lower-case letters, digits and dashes; a host directory's path is absolute")
		}
		v.Name = src
	}
	if !strings.HasPrefix(dst, "/") {
		return bad("the pod directory must be an absolute path")
	}
	v.Destination = filepath.Clean(dst)
	return v, nil
}

// reservedPodDirs are where no volume may be mounted: the pod's root,
// the kernel's filesystems and podctl's own directory.
var reservedPodDirs = []string{"/proc", "/sys", "/dev", "/.podctl"}

// validateVolumes checks the pod's volumes, before anything is created.
func validateVolumes(vs []VolumeMount) error {
	seen := map[string]bool{}
	for _, v := range vs {
		if v.Destination == "/" || !filepath.IsAbs(v.Destination) || filepath.Clean(v.Destination) != v.Destination {
			return errdefs.New(errdefs.InvalidArgument, "invalid volume %s: the pod directory must be a clean absolute path other than /", v)
		}
		for _, r := range reservedPodDirs {
			if v.Destination == r || strings.HasPrefix(v.Destination, r+"/") {
				return errdefs.New(errdefs.InvalidArgument, "invalid volume %s: nothing may be mounted under %s", v, r)
			}
		}
		if seen[v.Destination] {
			return errdefs.New(errdefs.Conflict, "two volumes are mounted at %s", v.Destination)
		}
		seen[v.Destination] = true
		if (v.Name == "") == (v.Source == "") {
			return errdefs.New(errdefs.InvalidArgument, "invalid volume %s: want a name or a host directory", v)
		}
		if v.Name != "" {
			if err := names.Validate(v.Name); err != nil {
				return err
			}
		} else if !filepath.IsAbs(v.Source) {
			return errdefs.New(errdefs.InvalidArgument, "invalid volume %s: the host directory must be an absolute path", v)
		}
	}
	return nil
}

// NamedVolumes are the names of the pod's named volumes.
func (s Spec) NamedVolumes() []string {
	var ns []string
	for _, v := range s.Volumes {
		if v.Name != "" && !slices.Contains(ns, v.Name) {
			ns = append(ns, v.Name)
		}
	}
	return ns
}

// HostVolumes are the pod's host-directory volumes.
func (s Spec) HostVolumes() []VolumeMount {
	var hs []VolumeMount
	for _, v := range s.Volumes {
		if v.Name == "" {
			hs = append(hs, v)
		}
	}
	return hs
}

// Desktop is what a desktop pod's spec records of its session. inspect
// shows it, password included: the pod's owner needs it to connect.
type Desktop struct {
	// Geometry is the screen's WIDTHxHEIGHT, Display the X display.
	Geometry string `json:"geometry"`
	Display  string `json:"display"`
	// Password is the VNC password (VNC authentication reads 8
	// characters).
	Password string `json:"vncPassword"`
}

// VesselRef names the vessel a pod houses.
type VesselRef struct {
	// Name is the vessel's name inside the pod, which a pod restored
	// under a new name keeps.
	Name string `json:"name"`
	// Args is the guest's argv, for display.
	Args []string `json:"args"`
}

// Port is one published port: traffic to HostPort on the host is forwarded
// to PodPort on the pod's address.
type Port struct {
	HostPort uint16 `json:"hostPort"`
	PodPort  uint16 `json:"podPort"`
	Protocol string `json:"protocol"` // "tcp" or "udp"
}

func (p Port) String() string {
	return fmt.Sprintf("%d:%d/%s", p.HostPort, p.PodPort, p.Protocol)
}

// ParsePort parses HOSTPORT:PODPORT[/tcp|udp].
func ParsePort(s string) (Port, error) {
	bad := func(why string) (Port, error) {
		return Port{}, errdefs.New(errdefs.InvalidPort, "invalid port %q: %s (want HOSTPORT:PODPORT[/tcp|udp])", s, why)
	}
	spec, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return bad("protocol must be tcp or udp")
	}
	host, podPort, ok := strings.Cut(spec, ":")
	if !ok {
		return bad("missing ':'")
	}
	hp, err := parsePortNumber(host)
	if err != nil {
		return bad("host " + err.Error())
	}
	pp, err := parsePortNumber(podPort)
	if err != nil {
		return bad("pod " + err.Error())
	}
	return Port{HostPort: hp, PodPort: pp, Protocol: proto}, nil
}

func parsePortNumber(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port must be a number from 1 to 65535")
	}
	return uint16(n), nil
}

// ParseSize parses a memory size: a number of bytes with an optional
// binary suffix (k, m, g, t; "b", "ib" and upper case accepted), as
// podman's --memory does.
func ParseSize(s string) (int64, error) { return size.Parse(s) }

// validate checks a Spec before anything is created.
func (s *Spec) validate() error {
	if err := names.Validate(s.Name); err != nil {
		return err
	}
	if s.Network != "" {
		if err := names.Validate(s.Network); err != nil {
			return err
		}
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		return errdefs.New(errdefs.Usage, "missing command: podctl create [OPTIONS] -- CMD [ARGS...]")
	}
	for _, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return errdefs.New(errdefs.InvalidArgument, "invalid environment variable %q: want KEY=VALUE", kv)
		}
	}
	if s.Vessel != nil {
		if err := names.Validate(s.Vessel.Name); err != nil {
			return err
		}
	}
	if s.Workdir != "" && !strings.HasPrefix(s.Workdir, "/") {
		return errdefs.New(errdefs.InvalidArgument, "invalid workdir %q: must be an absolute path", s.Workdir)
	}
	if s.PidsLimit < 0 || s.MemoryLimit < 0 {
		return errdefs.New(errdefs.InvalidArgument, "limits must not be negative")
	}
	if err := validateVolumes(s.Volumes); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, p := range s.Ports {
		k := fmt.Sprintf("%d/%s", p.HostPort, p.Protocol)
		if seen[k] {
			return errdefs.New(errdefs.Conflict, "port %s is published twice", k)
		}
		seen[k] = true
	}
	return nil
}

// CommandLine is the pod's command as `podctl ps` shows it: a housed
// vessel's is "wasm:" and its arguments.
func (s Spec) CommandLine() string {
	if s.Vessel != nil {
		return "wasm:" + strings.Join(s.Vessel.Args, " ")
	}
	return strings.Join(s.Command, " ")
}
