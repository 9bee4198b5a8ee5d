package virtns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A pod's network namespace belongs to podctl, not to the pod: podctl
// makes it, bind-mounts it at a path in the pod's directory and plumbs it
// (eth0 with the pod's address and MAC, loopback, the default route);
// libcontainer joins it. CRIU then treats it as external: it neither
// dumps it (about 35 ms of `ip ... save` and iptables-save runs per
// checkpoint) nor recreates it (about 50 ms of `ip ... restore` runs per
// restore). podctl recreates it itself from what it knows, in a few
// netlink calls. The sockets inside are the processes' and CRIU still
// dumps and restores them, established TCP connections included.

// CreateNetNS makes a new network namespace and bind-mounts it at path
// (which must not exist). The calling thread never leaves its namespace
// for long: the new namespace is made on a locked thread which returns to
// the original before it is unlocked (a thread that cannot is left locked
// and so dies with its goroutine).
func CreateNetNS(ctx context.Context, path string) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("netns %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("netns %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o600)
	if err != nil {
		return fmt.Errorf("netns %s: %w", path, err)
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		err = unix.Mount(self, path, "", unix.MS_BIND, "")
		if serr := netns.Set(orig); serr != nil {
			errc <- errors.Join(err, serr) // stay locked: this thread is spoilt
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("netns %s: %w", path, err)
	}
	return nil
}

// DeleteNetNS unmounts and removes a namespace made by CreateNetNS; a
// missing one is not an error. The namespace itself goes when its last
// process and mount are gone, taking its interfaces with it. It is
// cleanup: it runs even when ctx is cancelled.
func DeleteNetNS(ctx context.Context, path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("netns %s: unmount: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("netns %s: %w", path, err)
	}
	return nil
}

// PlumbPod gives the namespace at nsPath the pod's network: a veth pair
// whose pod end becomes eth0 there with the endpoint's MAC and address,
// up, with loopback up and a default route through the gateway. With
// attach, the host end joins the bridge at once (a new pod); without, it
// stays down and outside the bridge until AdoptVeth (a pod being
// restored, whose sockets must see no packet before CRIU has restored
// them).
func (n Network) PlumbPod(ctx context.Context, nsPath string, ep Endpoint, attach bool) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("plumb %s: %w", nsPath, err)
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("plumb %s: %w", nsPath, err)
	}
	defer ns.Close()
	// The pod end is created inside the namespace: moving a link between
	// namespaces waits for an RCU grace period, some 30 ms.
	if attach {
		if err := n.AttachVeth(ctx, ep, ns); err != nil {
			return err
		}
	} else if err := createVeth(n, ep, false, ns); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			DetachVeth(context.WithoutCancel(ctx), ep)
		}
	}()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("plumb %s: %w", nsPath, err)
	}
	defer h.Close()
	if lo, err := h.LinkByName("lo"); err != nil {
		return fmt.Errorf("plumb lo: %w", err)
	} else if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("plumb lo: %w", err)
	}
	eth, err := h.LinkByName(PodInterface)
	if err != nil {
		return fmt.Errorf("plumb %s: %w", PodInterface, err)
	}
	if err := h.AddrReplace(eth, &netlink.Addr{IPNet: prefixToIPNet(n.Prefix(ep.IP))}); err != nil {
		return fmt.Errorf("plumb %s: address: %w", PodInterface, err)
	}
	if err := h.LinkSetUp(eth); err != nil {
		return fmt.Errorf("plumb %s: up: %w", PodInterface, err)
	}
	gw := net.IP(n.Gateway.AsSlice())
	route := &netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw, Src: net.IP(ep.IP.AsSlice())}
	if err := h.RouteAdd(route); err != nil {
		// The route needs the link's carrier on some kernels only once
		// up; onlink makes it independent of the host end's state.
		route.Flags = int(netlink.FLAG_ONLINK)
		if err2 := h.RouteReplace(route); err2 != nil {
			return fmt.Errorf("plumb %s: default route: %w", PodInterface, err)
		}
	}
	return nil
}
