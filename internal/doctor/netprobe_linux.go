//go:build linux

package doctor

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// checkNFTables checks that the kernel's nf_tables netlink interface answers
// by listing the tables of the host's network namespace.
func checkNFTables(ctx context.Context) []Check {
	const (
		name = "kernel: nf_tables"
		fix  = "use a kernel with CONFIG_NF_TABLES (or `modprobe nf_tables`), and run podctl as root"
	)
	n, err := listNFTables(ctx)
	if err != nil {
		return []Check{failed(name, true, err.Error(), fix)}
	}
	tables := "tables"
	if n == 1 {
		tables = "table"
	}
	return []Check{passed(name, true, fmt.Sprintf("netlink answers (%d %s)", n, tables))}
}

// listNFTables returns the number of nf_tables tables in the current network
// namespace. It gives up after netlinkTimeout or when ctx is done.
func listNFTables(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, netlinkTimeout)
	defer cancel()
	conn, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return 0, fmt.Errorf("open nftables netlink socket: %w", err)
	}
	defer conn.CloseLasting()

	type result struct {
		n   int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				ch <- result{err: fmt.Errorf("list tables panicked: %v", v)}
			}
		}()
		tables, err := conn.ListTables()
		ch <- result{n: len(tables), err: err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			return 0, fmt.Errorf("list nftables tables: %w", res.err)
		}
		return res.n, nil
	case <-ctx.Done():
		// Closing the lasting connection aborts the pending request.
		conn.CloseLasting()
		return 0, fmt.Errorf("list nftables tables: %w", ctx.Err())
	}
}

// Link names used inside the throwaway network namespaces. They never exist
// in the host's namespace.
const (
	probeVeth     = "podctl-doc0"
	probeVethPeer = "podctl-doc1"
	probeBridge   = "podctl-docbr0"
)

// checkVeth creates and deletes a veth pair in a throwaway network namespace.
func checkVeth(ctx context.Context) []Check {
	const (
		name = "kernel: veth"
		fix  = "use a kernel with CONFIG_VETH (or `modprobe veth`), and run podctl as root"
	)
	if err := inThrowawayNetns(ctx, vethProbe); err != nil {
		return []Check{failed(name, true, err.Error(), fix)}
	}
	return []Check{passed(name, true, "created and deleted a veth pair in a throwaway netns")}
}

// checkBridge creates and deletes a bridge, with a veth port, in a throwaway
// network namespace.
func checkBridge(ctx context.Context) []Check {
	const (
		name = "kernel: bridge"
		fix  = "use a kernel with CONFIG_BRIDGE (or `modprobe bridge`), and run podctl as root"
	)
	if err := inThrowawayNetns(ctx, bridgeProbe); err != nil {
		return []Check{failed(name, true, err.Error(), fix)}
	}
	return []Check{passed(name, true, "created and deleted a bridge in a throwaway netns")}
}

// vethProbe creates a veth pair, brings both ends up and deletes it.
func vethProbe(h *netlink.Handle) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = probeVeth
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: probeVethPeer}); err != nil {
		return fmt.Errorf("create veth pair: %w", err)
	}
	end, err := linkOfType(h, probeVeth, "veth")
	if err != nil {
		return err
	}
	peer, err := linkOfType(h, probeVethPeer, "veth")
	if err != nil {
		return err
	}
	for _, l := range []netlink.Link{end, peer} {
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up: %w", l.Attrs().Name, err)
		}
	}
	if err := h.LinkDel(end); err != nil {
		return fmt.Errorf("delete veth pair: %w", err)
	}
	// Deleting one end deletes the pair.
	if _, err := h.LinkByName(probeVethPeer); err == nil {
		return fmt.Errorf("veth peer %s still exists after deleting %s", probeVethPeer, probeVeth)
	}
	return nil
}

// bridgeProbe creates a bridge, attaches one end of a veth pair to it, brings
// it up and deletes both.
func bridgeProbe(h *netlink.Handle) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = probeBridge
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		return fmt.Errorf("create bridge: %w", err)
	}
	br, err := linkOfType(h, probeBridge, "bridge")
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("set %s up: %w", probeBridge, err)
	}
	vattrs := netlink.NewLinkAttrs()
	vattrs.Name = probeVeth
	vattrs.MasterIndex = br.Attrs().Index
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: vattrs, PeerName: probeVethPeer}); err != nil {
		return fmt.Errorf("create veth pair on bridge: %w", err)
	}
	port, err := linkOfType(h, probeVeth, "veth")
	if err != nil {
		return err
	}
	if port.Attrs().MasterIndex != br.Attrs().Index {
		return fmt.Errorf("%s is not a port of %s", probeVeth, probeBridge)
	}
	if err := h.LinkDel(port); err != nil {
		return fmt.Errorf("delete veth pair: %w", err)
	}
	if err := h.LinkDel(br); err != nil {
		return fmt.Errorf("delete bridge: %w", err)
	}
	if _, err := h.LinkByName(probeBridge); err == nil {
		return fmt.Errorf("bridge %s still exists after deleting it", probeBridge)
	}
	return nil
}

// linkOfType looks a link up by name and checks its type.
func linkOfType(h *netlink.Handle, name, typ string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	if l.Type() != typ {
		return nil, fmt.Errorf("%s has type %q, want %q", name, l.Type(), typ)
	}
	return l, nil
}

// inThrowawayNetns runs fn with a netlink handle bound to a new, empty network
// namespace that is destroyed afterwards, so that nothing fn creates can be
// left behind in the host's namespace. It returns early when ctx is done
// (fn's netlink requests time out on their own shortly after).
func inThrowawayNetns(ctx context.Context, fn func(*netlink.Handle) error) error {
	errc := make(chan error, 1)
	go func() { errc <- runInThrowawayNetns(fn) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return fmt.Errorf("throwaway network namespace: %w", ctx.Err())
	}
}

// runInThrowawayNetns implements inThrowawayNetns on the calling goroutine.
//
// Network namespaces are per thread: the goroutine locks its OS thread,
// unshares a new network namespace on it and opens its netlink sockets there.
// Afterwards the thread returns to its original namespace; when that fails the
// thread stays locked, and the Go runtime terminates it when the goroutine
// exits, so no goroutine ever runs in the wrong namespace. The throwaway
// namespace, and every link in it, disappears with its last reference.
func runInThrowawayNetns(fn func(*netlink.Handle) error) (err error) {
	runtime.LockOSThread()
	restored := true
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("throwaway network namespace: panic: %v", v)
		}
		if restored {
			runtime.UnlockOSThread()
		}
	}()

	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open current network namespace: %w", err)
	}
	defer unix.Close(orig)
	var origStat unix.Stat_t
	if err := unix.Fstat(orig, &origStat); err != nil {
		return fmt.Errorf("stat current network namespace: %w", err)
	}

	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
	}
	restored = false
	defer func() {
		if serr := unix.Setns(orig, unix.CLONE_NEWNET); serr != nil {
			err = errors.Join(err, fmt.Errorf("return to the original network namespace: %w", serr))
			return
		}
		restored = true
	}()

	// Never touch the host's namespace: make sure this thread really is
	// somewhere else now.
	var newStat unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &newStat); err != nil {
		return fmt.Errorf("stat new network namespace: %w", err)
	}
	if newStat.Dev == origStat.Dev && newStat.Ino == origStat.Ino {
		return errors.New("unshare(CLONE_NEWNET) left the thread in its original network namespace")
	}

	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open netlink socket in throwaway network namespace: %w", err)
	}
	defer h.Close()
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		return fmt.Errorf("set netlink socket timeout: %w", err)
	}
	return fn(h)
}
