package virtns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/internal/errdefs"
)

func TestGARPFrame(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x50, 10, 88, 0, 7}
	f := garpFrame(mac, netip.MustParseAddr("10.88.0.7"))
	want, _ := hex.DecodeString("ffffffffffff" + "02500a580007" + "0806" + // Ethernet
		"0001" + "0800" + "06" + "04" + "0001" + // ARP request, Ethernet/IPv4
		"02500a580007" + "0a580007" + "000000000000" + "0a580007") // sender, target
	want = append(want, make([]byte, 60-len(want))...)
	if !bytes.Equal(f, want) {
		t.Errorf("garpFrame =\n%x\nwant\n%x", f, want)
	}
}

func TestSendGratuitousARPBadArguments(t *testing.T) {
	ctx := context.Background()
	if err := SendGratuitousARP(ctx, "/proc/self/ns/net", "eth0", netip.MustParseAddr("fd00::1"), 1); !errdefs.Is(err, errdefs.InvalidArgument) {
		t.Errorf("IPv6 address: %v, want InvalidArgument", err)
	}
	if err := SendGratuitousARP(ctx, "/proc/self/ns/net", "eth0", netip.Addr{}, 1); !errdefs.Is(err, errdefs.InvalidArgument) {
		t.Errorf("zero address: %v, want InvalidArgument", err)
	}
	if err := SendGratuitousARP(ctx, "/proc/self/ns/net", "eth0", netip.MustParseAddr("10.0.0.1"), 0); !errdefs.Is(err, errdefs.InvalidArgument) {
		t.Errorf("count 0: %v, want InvalidArgument", err)
	}
	if err := SendGratuitousARP(ctx, "/nonexistent/ns/net", "eth0", netip.MustParseAddr("10.0.0.1"), 1); !errdefs.Is(err, errdefs.NotFound) {
		t.Errorf("missing namespace: %v, want NotFound", err)
	}
}

// garpNetns is a network namespace with one end of a veth pair in it; the
// other end, outer, is in the test's namespace.
type garpNetns struct {
	path     string
	inner    string
	innerMAC net.HardwareAddr
	outer    netlink.Link
}

func newGARPNetns(t *testing.T) garpNetns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and a veth pair")
	}
	b := make([]byte, 3)
	rand.Read(b)
	suffix := hex.EncodeToString(b)
	name := "podctl-garp-" + suffix

	// NewNamed moves the calling thread into the new namespace: do it on
	// a locked thread and move back.
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	ns, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		// The thread is in the wrong namespace: leave it locked so that
		// it dies with the test's goroutine.
		t.Fatalf("return to the test's network namespace: %v", serr)
	}
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	t.Cleanup(func() { netns.DeleteNamed(name) })
	defer ns.Close()

	g := garpNetns{
		path:     "/run/netns/" + name,
		inner:    "ga" + suffix,
		innerMAC: net.HardwareAddr{0x02, 0x50, 0xfe, b[0], b[1], b[2]},
	}
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: "gb" + suffix},
		PeerName:         g.inner,
		PeerHardwareAddr: g.innerMAC,
		PeerNamespace:    netlink.NsFd(ns),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("create veth: %v", err)
	}
	// Deleting the namespace deletes the pair; this is for a failure
	// between here and there.
	t.Cleanup(func() { deleteLink(veth.Name) })
	if g.outer, err = netlink.LinkByName(veth.Name); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(g.outer); err != nil {
		t.Fatalf("outer end up: %v", err)
	}
	h, in := g.inside(t)
	if err := h.LinkSetUp(in); err != nil {
		t.Fatalf("inner end up: %v", err)
	}
	return g
}

// inside returns a netlink handle in g's namespace, closed when the test
// ends, and the inner end of its veth pair.
func (g garpNetns) inside(t *testing.T) (*netlink.Handle, netlink.Link) {
	t.Helper()
	ns, err := netns.GetFromPath(g.path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	in, err := h.LinkByName(g.inner)
	if err != nil {
		t.Fatalf("inner end: %v", err)
	}
	return h, in
}

// listenARP opens a packet socket receiving the ARP frames that arrive on
// link.
func listenARP(t *testing.T, link netlink.Link) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: link.Attrs().Index}); err != nil {
		t.Fatal(err)
	}
	// A short receive timeout lets the reader check its deadline.
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fd
}

// readGARPs reads frames from fd until it has seen n gratuitous ARP
// announcements of ip from mac or the deadline passes, and returns how
// many it saw.
func readGARPs(t *testing.T, fd int, mac net.HardwareAddr, ip netip.Addr, n int, deadline time.Time) int {
	t.Helper()
	a := ip.As4()
	seen := 0
	buf := make([]byte, 1500)
	for seen < n && time.Now().Before(deadline) {
		m, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		f := buf[:m]
		if len(f) < 42 {
			continue
		}
		arp := f[14:]
		if bytes.Equal(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) &&
			bytes.Equal(f[6:12], mac) &&
			binary.BigEndian.Uint16(f[12:14]) == unix.ETH_P_ARP &&
			binary.BigEndian.Uint16(arp[0:2]) == 1 &&
			binary.BigEndian.Uint16(arp[2:4]) == unix.ETH_P_IP &&
			binary.BigEndian.Uint16(arp[6:8]) == arpOpRequest &&
			bytes.Equal(arp[8:14], mac) &&
			bytes.Equal(arp[14:18], a[:]) &&
			bytes.Equal(arp[18:24], make([]byte, 6)) &&
			bytes.Equal(arp[24:28], a[:]) {
			seen++
		}
	}
	return seen
}

func TestSendGratuitousARP(t *testing.T) {
	g := newGARPNetns(t)
	fd := listenARP(t, g.outer)
	ip := netip.MustParseAddr("10.88.3.4")

	// Pin the caller to its thread: the call must leave that thread in
	// the test's namespace.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := SendGratuitousARP(context.Background(), g.path, g.inner, ip, 3); err != nil {
		t.Fatalf("SendGratuitousARP: %v", err)
	}
	after, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("caller's thread in %s after the call, was in %s", after, before)
	}
	if took := time.Since(start); took < 2*GARPInterval {
		t.Errorf("3 announcements took %v, want at least %v", took, 2*GARPInterval)
	}
	if got := readGARPs(t, fd, g.innerMAC, ip, 3, time.Now().Add(5*time.Second)); got != 3 {
		t.Fatalf("received %d gratuitous ARPs, want 3", got)
	}
}

func TestSendGratuitousARPNoInterface(t *testing.T) {
	g := newGARPNetns(t)
	err := SendGratuitousARP(context.Background(), g.path, "nosuchif0", netip.MustParseAddr("10.88.3.4"), 1)
	if !errdefs.Is(err, errdefs.NotFound) {
		t.Errorf("missing interface: %v, want NotFound", err)
	}
	// The interface exists outside the namespace, not in it.
	err = SendGratuitousARP(context.Background(), g.path, g.outer.Attrs().Name, netip.MustParseAddr("10.88.3.4"), 1)
	if !errdefs.Is(err, errdefs.NotFound) {
		t.Errorf("interface of another namespace: %v, want NotFound", err)
	}
}

func TestSendGratuitousARPCanceled(t *testing.T) {
	g := newGARPNetns(t)
	fd := listenARP(t, g.outer)
	ip := netip.MustParseAddr("10.88.3.5")
	ctx, cancel := context.WithTimeout(context.Background(), 3*GARPInterval)
	defer cancel()
	start := time.Now()
	err := SendGratuitousARP(ctx, g.path, g.inner, ip, 1000)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendGratuitousARP with an expiring context = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("returned after %v", took)
	}
	// At least the first announcement went out before the deadline.
	if got := readGARPs(t, fd, g.innerMAC, ip, 1, time.Now().Add(5*time.Second)); got != 1 {
		t.Errorf("received %d gratuitous ARPs, want at least 1", got)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if err := SendGratuitousARP(cctx, g.path, g.inner, ip, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v, want Canceled", err)
	}
}

func TestResolvePendingNeighbours(t *testing.T) {
	g := newGARPNetns(t)
	fd := listenARP(t, g.outer)
	h, in := g.inside(t)
	podIP := netip.MustParseAddr("10.88.5.2")
	if n, err := ResolvePendingNeighbours(context.Background(), g.path, g.inner, podIP); err != nil || n != 0 {
		t.Fatalf("no neighbour pending: asked for %d, %v", n, err)
	}
	// One neighbour being resolved, one known for good.
	pending, known := netip.MustParseAddr("10.88.5.9"), netip.MustParseAddr("10.88.5.8")
	for _, n := range []struct {
		ip    netip.Addr
		state int
		mac   net.HardwareAddr
	}{{pending, unix.NUD_INCOMPLETE, nil}, {known, unix.NUD_PERMANENT, net.HardwareAddr{2, 0, 0, 0, 0, 8}}} {
		if err := h.NeighAdd(&netlink.Neigh{LinkIndex: in.Attrs().Index, Family: unix.AF_INET, State: n.state, IP: n.ip.AsSlice(), HardwareAddr: n.mac}); err != nil {
			t.Fatalf("add neighbour %s: %v", n.ip, err)
		}
	}
	n, err := ResolvePendingNeighbours(context.Background(), g.path, g.inner, podIP)
	if err != nil || n != 1 {
		t.Fatalf("one neighbour pending: asked for %d, %v", n, err)
	}
	want := arpRequest(g.innerMAC, podIP, pending)
	buf := make([]byte, 1500)
	for deadline := time.Now().Add(5 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatalf("no ARP request for %s from %s arrived", pending, podIP)
		}
		m, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if m >= 42 && bytes.Equal(buf[:42], want[:42]) {
			break
		}
	}
	if _, err := ResolvePendingNeighbours(context.Background(), g.path, g.inner, netip.MustParseAddr("fd00::2")); !errdefs.Is(err, errdefs.InvalidArgument) {
		t.Errorf("an IPv6 address: %v, want InvalidArgument", err)
	}
	if _, err := ResolvePendingNeighbours(context.Background(), "/nonexistent/ns/net", g.inner, podIP); !errdefs.Is(err, errdefs.NotFound) {
		t.Errorf("a missing namespace: %v, want NotFound", err)
	}
}
