package virtns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/internal/errdefs"
)

// GARPInterval is the time between two gratuitous ARP announcements sent by
// SendGratuitousARP.
const GARPInterval = 20 * time.Millisecond

// SendGratuitousARP announces, count times and GARPInterval apart, that ip
// is at the MAC address of the interface ifname in the network namespace
// at nsPath (such as /proc/PID/ns/net): it broadcasts ARP requests whose
// sender and target addresses are both ip, so that neighbours and switches
// update their tables at once when a pod reappears on another host.
//
// The namespace is entered only to open and bind the packet socket, on a
// dedicated OS thread; the socket keeps its namespace, so the
// announcements are sent from the caller's thread. SendGratuitousARP stops
// early with ctx's error if ctx is done.
func SendGratuitousARP(ctx context.Context, nsPath, ifname string, ip netip.Addr, count int) error {
	ip = ip.Unmap()
	if !ip.Is4() {
		return errdefs.New(errdefs.InvalidArgument, "gratuitous ARP: %s is not an IPv4 address", ip)
	}
	if count < 1 {
		return errdefs.New(errdefs.InvalidArgument, "gratuitous ARP: count %d: want at least 1", count)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gratuitous ARP for %s on %s: %w", ip, ifname, err)
	}
	fd, ifindex, mac, err := openARPSocket(nsPath, ifname)
	if err != nil {
		return fmt.Errorf("gratuitous ARP for %s: %w", ip, err)
	}
	// Closing a packet socket waits for an RCU grace period (the
	// kernel's synchronize_net), some 20 ms nobody needs to wait for.
	defer func() { go unix.Close(fd) }()

	frame := garpFrame(mac, ip)
	to := broadcast(ifindex)
	tick := time.NewTicker(GARPInterval)
	defer tick.Stop()
	for i := range count {
		if i > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("gratuitous ARP for %s on %s: sent %d of %d: %w", ip, ifname, i, count, ctx.Err())
			case <-tick.C:
			}
		}
		if err := unix.Sendto(fd, frame, 0, to); err != nil {
			return fmt.Errorf("gratuitous ARP for %s on %s: send: %w", ip, ifname, err)
		}
	}
	return nil
}

// ResolvePendingNeighbours asks once more, at once, for the Ethernet
// address of every neighbour that the network namespace at nsPath is still
// resolving on ifname, as ip: one ARP request each, from the interface's
// MAC. It returns how many it asked for.
//
// A restored pod runs for a moment before its veth joins the bridge (see
// restart.Start): what its TCP sends then makes its kernel ask for the
// peer's address, into a link that leads nowhere, and the packets wait in
// the neighbour entry. The kernel asks again only after retrans_time (1 s),
// so a viewer's first update after a migration came 1.1 s late. The reply
// to this request completes the entry, whoever asked, and the waiting
// packets leave.
func ResolvePendingNeighbours(ctx context.Context, nsPath, ifname string, ip netip.Addr) (int, error) {
	ip = ip.Unmap()
	if !ip.Is4() {
		return 0, errdefs.New(errdefs.InvalidArgument, "resolve neighbours: %s is not an IPv4 address", ip)
	}
	pending, err := incompleteNeighbours(nsPath, ifname)
	if err != nil || len(pending) == 0 {
		return 0, err
	}
	fd, ifindex, mac, err := openARPSocket(nsPath, ifname)
	if err != nil {
		return 0, fmt.Errorf("resolve neighbours: %w", err)
	}
	defer func() { go unix.Close(fd) }()
	to := broadcast(ifindex)
	for i, n := range pending {
		if err := ctx.Err(); err != nil {
			return i, fmt.Errorf("resolve neighbours on %s: %w", ifname, err)
		}
		if err := unix.Sendto(fd, arpRequest(mac, ip, n), 0, to); err != nil {
			return i, fmt.Errorf("resolve neighbour %s on %s: send: %w", n, ifname, err)
		}
	}
	return len(pending), nil
}

// broadcast is the Ethernet broadcast address of the interface ifindex,
// where ARP requests go.
func broadcast(ifindex int) *unix.SockaddrLinklayer {
	return &unix.SockaddrLinklayer{
		Protocol: htons(unix.ETH_P_ARP),
		Ifindex:  ifindex,
		Halen:    6,
		Addr:     [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
}

// incompleteNeighbours lists the IPv4 neighbours of ifname, in the network
// namespace at nsPath, whose address the kernel is still asking for.
func incompleteNeighbours(nsPath, ifname string) ([]netip.Addr, error) {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, errdefs.New(errdefs.NotFound, "network namespace %s: %w", nsPath, err)
		}
		return nil, fmt.Errorf("network namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", nsPath, err)
	}
	defer h.Close()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return nil, errdefs.New(errdefs.NotFound, "interface %s in %s: %w", ifname, nsPath, err)
	}
	neighs, err := h.NeighList(link.Attrs().Index, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("neighbours of %s in %s: %w", ifname, nsPath, err)
	}
	var pending []netip.Addr
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP.To4()); ok && n.State&unix.NUD_INCOMPLETE != 0 {
			pending = append(pending, a)
		}
	}
	return pending, nil
}

// openARPSocket opens an AF_PACKET socket for ARP frames bound to ifname in
// the network namespace at nsPath, and returns it with the interface's
// index and MAC address.
//
// Network namespaces belong to threads, so the work happens on a new
// goroutine locked to its thread. If the thread cannot be returned to its
// original namespace it stays locked, and the Go runtime terminates it
// when the goroutine exits, so no goroutine ever runs in the wrong
// namespace.
func openARPSocket(nsPath, ifname string) (fd, ifindex int, mac net.HardwareAddr, err error) {
	type result struct {
		fd, ifindex int
		mac         net.HardwareAddr
		err         error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var r result
		restored := false
		defer func() {
			ch <- r
			if restored {
				runtime.UnlockOSThread()
			}
		}()
		orig, err := netns.Get()
		if err != nil {
			r.err = fmt.Errorf("current network namespace: %w", err)
			restored = true
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(nsPath)
		if err != nil {
			r.err = fmt.Errorf("network namespace %s: %w", nsPath, err)
			if errors.Is(err, unix.ENOENT) {
				r.err = errdefs.New(errdefs.NotFound, "network namespace %s: %w", nsPath, err)
			}
			restored = true
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			r.err = fmt.Errorf("enter network namespace %s: %w", nsPath, err)
			// setns(2) failing leaves the thread where it was, but
			// returning to orig costs nothing and proves it.
		}
		if r.err == nil {
			r.fd, r.ifindex, r.mac, r.err = bindARPSocket(ifname)
		}
		if err := netns.Set(orig); err != nil {
			if r.err == nil {
				unix.Close(r.fd)
			}
			r.err = errors.Join(r.err, fmt.Errorf("return from network namespace %s: %w", nsPath, err))
			return
		}
		restored = true
	}()
	r := <-ch
	return r.fd, r.ifindex, r.mac, r.err
}

// bindARPSocket does openARPSocket's work in the current thread's network
// namespace.
func bindARPSocket(ifname string) (fd, ifindex int, mac net.HardwareAddr, err error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return -1, 0, nil, errdefs.New(errdefs.NotFound, "interface %s not found", ifname)
		}
		return -1, 0, nil, fmt.Errorf("interface %s: %w", ifname, err)
	}
	attrs := link.Attrs()
	if len(attrs.HardwareAddr) != 6 {
		return -1, 0, nil, errdefs.New(errdefs.Unsupported, "interface %s: no Ethernet address", ifname)
	}
	fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return -1, 0, nil, fmt.Errorf("interface %s: packet socket: %w", ifname, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: attrs.Index}); err != nil {
		unix.Close(fd)
		return -1, 0, nil, fmt.Errorf("interface %s: bind packet socket: %w", ifname, err)
	}
	return fd, attrs.Index, attrs.HardwareAddr, nil
}

// garpFrame returns the Ethernet frame of a gratuitous ARP request from mac
// for ip, padded to Ethernet's 60-byte minimum (without the FCS).
func garpFrame(mac net.HardwareAddr, ip netip.Addr) []byte {
	return arpRequest(mac, ip, ip)
}

// arpRequest returns the Ethernet frame, broadcast and padded to 60 bytes,
// of an ARP request from mac and sender asking for target's address.
func arpRequest(mac net.HardwareAddr, sender, target netip.Addr) []byte {
	f := make([]byte, 60)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // destination: broadcast
	copy(f[6:12], mac)                                       // source
	binary.BigEndian.PutUint16(f[12:14], unix.ETH_P_ARP)
	arp := f[14:]
	binary.BigEndian.PutUint16(arp[0:2], 1)             // hardware type: Ethernet
	binary.BigEndian.PutUint16(arp[2:4], unix.ETH_P_IP) // protocol type: IPv4
	arp[4], arp[5] = 6, 4                               // address lengths
	binary.BigEndian.PutUint16(arp[6:8], arpOpRequest)  // operation
	copy(arp[8:14], mac)                                // sender hardware address
	s, t := sender.As4(), target.As4()
	copy(arp[14:18], s[:]) // sender protocol address
	// arp[18:24], the target hardware address, stays zero.
	copy(arp[24:28], t[:]) // target protocol address
	return f
}

// arpOpRequest is the ARP operation code of a request. A gratuitous ARP is
// a request rather than a reply because every implementation, including
// Linux with arp_accept off, updates an existing entry from a request.
const arpOpRequest = 1

// htons converts a 16-bit value from host to network byte order, as the
// protocol fields of packet sockets want it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
