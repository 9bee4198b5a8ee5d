package virtns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/statedir"
)

// Network is a pod network: a Linux bridge on the host, a subnet whose
// first address is the bridge's (the pods' gateway), and the rule for
// traffic between its pods.
//
// The default network is Isolated: every pod's port on the bridge has the
// kernel's bridge-port isolation flag, so pods can talk to the gateway and,
// through it, the world, but not to each other. A named network is not
// isolated: its pods share one L2 segment. Traffic routed between two pod
// bridges is dropped by the forward chain in podctl's nftables table, so
// networks cannot reach each other either (except through published ports).
type Network struct {
	Name     string       `json:"name"`
	Bridge   string       `json:"bridge"`
	Subnet   netip.Prefix `json:"subnet"`
	Gateway  netip.Addr   `json:"gateway"`
	Isolated bool         `json:"isolated"`
	// Uplink, if set, is a host interface enslaved to the bridge (not
	// isolated): the pods share its LAN, so a pod's address is reachable
	// on whichever host of that LAN it lives.
	Uplink string `json:"uplink,omitempty"`
}

// NewNetwork validates a bridge name and an IPv4 subnet and returns the
// network with the subnet's first host address as gateway.
func NewNetwork(name, bridge, subnet string, isolated bool) (Network, error) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil || !p.Addr().Is4() || p.Bits() > 30 || p.Bits() < 8 {
		return Network{}, errdefs.New(errdefs.InvalidArgument, "invalid subnet %q: want an IPv4 CIDR from /8 to /30", subnet)
	}
	// The kernel's dev_valid_name: 1-15 bytes, not "." or "..", no '/',
	// ':' or white space.
	if len(bridge) == 0 || len(bridge) > unix.IFNAMSIZ-1 || bridge == "." || bridge == ".." ||
		strings.ContainsAny(bridge, "/: \t\n\v\f\r") {
		return Network{}, errdefs.New(errdefs.InvalidArgument, "invalid bridge name %q", bridge)
	}
	p = p.Masked()
	return Network{Name: name, Bridge: bridge, Subnet: p, Gateway: p.Addr().Next(), Isolated: isolated}, nil
}

// bridgeMAC is the bridge's fixed MAC, derived from the gateway address:
// every host gives the same network the same gateway MAC, so a pod that
// moves keeps a valid ARP entry for its gateway.
func (n Network) bridgeMAC() net.HardwareAddr {
	g := n.Gateway.As4()
	return net.HardwareAddr{0x02, 0x50, g[0], g[1], g[2], g[3]}
}

// Endpoint is one pod's attachment to a network: a veth pair whose host end
// is a bridge port and whose pod end becomes eth0 inside the pod.
type Endpoint struct {
	IP       netip.Addr `json:"ip"`
	MAC      string     `json:"mac"`
	HostVeth string     `json:"hostVeth"`
	// PodVeth is a name reserved for the pod end on the host. The pod end
	// is now created inside the pod's namespace as eth0 and never appears
	// on the host; leftover checks and older manifests still use it.
	PodVeth string `json:"podVeth"`
}

// PodInterface is the name of the pod's network interface inside the pod.
const PodInterface = "eth0"

// NewEndpoint names the veth pair and derives the MAC address from the
// pod's IP, so that both are stable: the same pod gets the same MAC on any
// host it moves to, and names never collide because addresses do not.
func NewEndpoint(ip netip.Addr) Endpoint {
	a := ip.As4()
	suffix := fmt.Sprintf("%02x%02x%02x%02x", a[0], a[1], a[2], a[3])
	// 02:... is a locally administered unicast address.
	mac := net.HardwareAddr{0x02, 0x50, a[0], a[1], a[2], a[3]}
	return Endpoint{IP: ip, MAC: mac.String(), HostVeth: "pv" + suffix, PodVeth: "pp" + suffix}
}

// Prefix returns the endpoint's address with the network's prefix length.
func (n Network) Prefix(ip netip.Addr) netip.Prefix { return netip.PrefixFrom(ip, n.Subnet.Bits()) }

// EnsureBridge creates the network's bridge if it is missing: a fixed MAC
// (so the pods' gateway never changes MAC as ports come and go), the
// gateway address, up. It also turns on IPv4 forwarding and lets published
// ports be reached from the host's loopback (route_localnet).
func (n Network) EnsureBridge(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bridge %s: %w", n.Bridge, err)
	}
	link, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("bridge %s: %w", n.Bridge, err)
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{
			Name:         n.Bridge,
			HardwareAddr: n.bridgeMAC(),
		}}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("create bridge %s: %w", n.Bridge, err)
		}
		link = br
	}
	addr := &netlink.Addr{IPNet: prefixToIPNet(n.Prefix(n.Gateway))}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("bridge %s: add %s: %w", n.Bridge, addr, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bridge %s: up: %w", n.Bridge, err)
	}
	if n.Uplink != "" {
		up, err := netlink.LinkByName(n.Uplink)
		if err != nil {
			return fmt.Errorf("bridge %s: uplink %s: %w", n.Bridge, n.Uplink, err)
		}
		if up.Attrs().MasterIndex != link.Attrs().Index {
			if err := netlink.LinkSetMaster(up, link); err != nil {
				return fmt.Errorf("bridge %s: enslave uplink %s: %w", n.Bridge, n.Uplink, err)
			}
		}
		if err := netlink.LinkSetUp(up); err != nil {
			return fmt.Errorf("bridge %s: uplink %s up: %w", n.Bridge, n.Uplink, err)
		}
	}
	for file, val := range map[string]string{
		"/proc/sys/net/ipv4/ip_forward":                           "1",
		"/proc/sys/net/ipv4/conf/" + n.Bridge + "/route_localnet": "1",
	} {
		if err := os.WriteFile(file, []byte(val), 0o644); err != nil {
			return fmt.Errorf("bridge %s: %w", n.Bridge, err)
		}
	}
	return nil
}

// DeleteBridge removes the network's bridge; a missing one is not an error.
// It is cleanup: it runs even when ctx is cancelled.
func (n Network) DeleteBridge(ctx context.Context) error {
	return deleteLink(n.Bridge)
}

// AttachVeth creates the endpoint's veth pair with its host end enslaved
// to the bridge (isolated on an isolated network) and up, and its pod end,
// named PodInterface and carrying the endpoint's MAC, in the network
// namespace podNS.
func (n Network) AttachVeth(ctx context.Context, ep Endpoint, podNS netns.NsHandle) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("veth %s: %w", ep.HostVeth, err)
	}
	if err := createVeth(n, ep, true, podNS); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			deleteLink(ep.HostVeth)
		}
	}()
	return n.AdoptVeth(ctx, ep)
}

// createVeth creates the endpoint's veth pair: the host end with the
// bridge's MTU (enslaved to it with attach), the pod end, PodInterface,
// with the MAC in the namespace podNS.
func createVeth(n Network, ep Endpoint, attach bool, podNS netns.NsHandle) error {
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("veth %s: bridge %s: %w", ep.HostVeth, n.Bridge, err)
	}
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return fmt.Errorf("veth %s: %w", ep.HostVeth, err)
	}
	attrs := netlink.LinkAttrs{Name: ep.HostVeth, MTU: br.Attrs().MTU}
	if attach {
		attrs.MasterIndex = br.Attrs().Index
	}
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: PodInterface, PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(int(podNS))}
	if err := netlink.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return errdefs.New(errdefs.Conflict, "veth %s: interface already exists", ep.HostVeth)
		}
		return fmt.Errorf("veth %s: %w", ep.HostVeth, err)
	}
	return nil
}

// DetachVeth removes the endpoint's veth pair from the host, whichever end
// is still there (the pair disappears with the pod's network namespace, so
// usually neither is). Missing links are not an error. It is cleanup: it
// runs even when ctx is cancelled.
func DetachVeth(ctx context.Context, ep Endpoint) error {
	return errors.Join(deleteLink(ep.HostVeth), deleteLink(ep.PodVeth))
}

func deleteLink(name string) error {
	if name == "" {
		return nil
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// AllocateIP leases the next free address of the network to owner. Leases
// are files named by address under leases.Dir, so an address stays taken
// across podctl restarts for as long as its pod exists. Allocation goes
// round-robin from the last address handed out, so a freed address is not
// reused at once. The caller must hold the state lock; stale reports
// whether an owner no longer exists (its lease is then reclaimed). Each
// candidate waits for the leases' lock; ctx's end stops the search.
func (n Network) AllocateIP(ctx context.Context, leases statedir.Leases, owner string, stale func(string) bool) (netip.Addr, error) {
	first := n.Gateway.Next()
	size := uint32(1) << (32 - n.Subnet.Bits())
	base := binary.BigEndian.Uint32(n.Subnet.Addr().AsSlice())
	hintFile := filepath.Join(leases.Dir, ".next")
	start := first
	if b, err := os.ReadFile(hintFile); err == nil {
		if a, err := netip.ParseAddr(strings.TrimSpace(string(b))); err == nil && n.Subnet.Contains(a) {
			start = a
		}
	}
	// Hosts are base+2 .. base+size-2 (network, gateway and broadcast
	// excluded): size-3 candidates.
	hosts := size - 3
	off := binary.BigEndian.Uint32(start.AsSlice()) - base - 2
	for i := uint32(0); i < hosts; i++ {
		if err := ctx.Err(); err != nil {
			return netip.Addr{}, fmt.Errorf("network %s: allocate an address: %w", n.Name, err)
		}
		v := base + 2 + (off+i)%hosts
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v)
		ip := netip.AddrFrom4(b)
		ok, _, err := leases.Take(ip.String(), owner, stale)
		if err != nil {
			return netip.Addr{}, err
		}
		if ok {
			next := base + 2 + (off+i+1)%hosts
			binary.BigEndian.PutUint32(b[:], next)
			if err := statedir.WriteFileAtomic(hintFile, []byte(netip.AddrFrom4(b).String()), 0o600); err != nil {
				leases.Release(ip.String(), owner)
				return netip.Addr{}, err
			}
			return ip, nil
		}
	}
	return netip.Addr{}, errdefs.New(errdefs.Conflict, "network %s: no free address in %s", n.Name, n.Subnet)
}

// AdoptVeth puts the host end of a restored pod's veth pair (made by CRIU
// under the endpoint's host name) on the network's bridge, isolated on an
// isolated network, and brings it up. Until then the restored pod's
// namespace receives nothing, which is what keeps packets away from its
// sockets while CRIU is still restoring them.
func (n Network) AdoptVeth(ctx context.Context, ep Endpoint) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("adopt %s: %w", ep.HostVeth, err)
	}
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("adopt %s: bridge %s: %w", ep.HostVeth, n.Bridge, err)
	}
	host, err := netlink.LinkByName(ep.HostVeth)
	if err != nil {
		return fmt.Errorf("adopt %s: %w", ep.HostVeth, err)
	}
	if err := netlink.LinkSetMaster(host, br); err != nil {
		return fmt.Errorf("adopt %s: enslave to %s: %w", ep.HostVeth, n.Bridge, err)
	}
	if n.Isolated {
		if err := netlink.LinkSetIsolated(host, true); err != nil {
			return fmt.Errorf("adopt %s: isolate: %w", ep.HostVeth, err)
		}
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("adopt %s: up: %w", ep.HostVeth, err)
	}
	return nil
}

// LinkExists reports whether a network interface of that name exists.
func LinkExists(ctx context.Context, name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}
