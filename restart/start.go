package restart

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/internal/cpufeat"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/virtns"
)

// CheckRestorable refuses an archive this host cannot restore with CRIU:
// another ISA, or (unless force) a CPU lacking features the source had,
// or an archive that does not say which features those are.
func CheckRestorable(am *checkpoint.Manifest, force bool) error {
	if am.Images.Kind != checkpoint.ImagesCRIU {
		return errdefs.New(errdefs.Unsupported, "archive holds %q images; this path restores only CRIU images", am.Images.Kind)
	}
	if am.Source.ISA != runtime.GOARCH {
		return errdefs.New(errdefs.Unsupported, "archive was made on %s; CRIU images cannot be restored on %s (migrate a Wasm vessel pod across ISAs)", am.Source.ISA, runtime.GOARCH)
	}
	if force {
		return nil
	}
	if cpufeat.Known(am.Source.ISA) && len(am.Source.CPUFeatures) == 0 {
		return errdefs.New(errdefs.Unsupported, "archive does not list the CPU features the pod may use, so they cannot be checked here (use --force to restore anyway)")
	}
	have, err := cpufeat.Host()
	if err != nil {
		return err
	}
	if missing := cpufeat.Missing(have, am.Source.CPUFeatures); len(missing) > 0 {
		return errdefs.New(errdefs.Unsupported, "this host's CPU lacks features the pod may use: %s (use --force to restore anyway)", strings.Join(missing, " "))
	}
	return nil
}

// Target is a pod as the restart stage brings it back: the kernel objects
// it is made of again.
type Target struct {
	// ID names the pod's container and its firewall rules.
	ID string
	// Rootfs is the pod's root filesystem, its writable layer in place.
	Rootfs virtns.Rootfs
	// NetNSPath is where the pod's new network namespace is mounted.
	NetNSPath string
	// Network and Endpoint are the pod's network and its address there.
	Network  virtns.Network
	Endpoint virtns.Endpoint
	// Ports are the ports the pod publishes.
	Ports []virtns.PortForward
	// Config and Runtime restore the pod's container.
	Config  virtns.PodConfig
	Runtime virtns.Runtime
	// Held restores the pod frozen, and without announcing its address:
	// a migration's destination holds it so until the source commits
	// (see Release).
	Held bool
}

// Start restores the pod t from the CRIU images in criuDir: it mounts the
// pod's root filesystem, makes a fresh network namespace plumbed as the
// pod's was but cut off from the bridge, restores the processes with CRIU
// (lifting the network lock a pod checkpointed on this host kept, in the
// meantime), then attaches the veth to the bridge, publishes the ports
// and announces the address with a gratuitous ARP. Until that adoption
// no packet can reach a socket CRIU is still restoring. With lazy, memory
// pages come from a `criu lazy-pages` daemon the caller runs on criuDir.
//
// On error, what Start made is left for the caller's rollback, which
// knows what the pod had before.
func Start(ctx context.Context, t Target, criuDir string, lazy bool) error {
	if err := t.Rootfs.Mount(ctx); err != nil {
		return err
	}
	failpoint.Hit(ctx, "restore:mounted")
	if err := virtns.CreateNetNS(ctx, t.NetNSPath); err != nil {
		return err
	}
	if err := t.Network.PlumbPod(ctx, t.NetNSPath, t.Endpoint, false); err != nil {
		return err
	}
	failpoint.Hit(ctx, "restore:plumbed")
	// A pod checkpointed on this host kept its network lock (see
	// pod.Manager.Checkpoint). Its new veth stays off the bridge until
	// AdoptVeth, so the lock can go while CRIU restores: lifting it waits
	// some 8 ms for the kernel.
	unlocked := make(chan error, 1)
	go func() { unlocked <- virtns.Firewall{}.UnlockPod(ctx, t.ID) }()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if _, err := t.Runtime.Restore(rctx, t.Config, virtns.RestoreOptions{ImagesDir: criuDir, Lazy: lazy}); err != nil {
		return err
	}
	if err := <-unlocked; err != nil {
		return err
	}
	failpoint.Hit(ctx, "restore:restored")
	if failpoint.Armed("restore:fail-after-criu") {
		return errors.New("injected failure after CRIU restored the pod")
	}
	if t.Held {
		// Off the bridge, the pod has run for the moment since CRIU
		// resumed it without anything outside seeing it.
		if _, err := virtns.Freeze(ctx, t.Config.CgroupPath); err != nil {
			return fmt.Errorf("hold the restored pod: %w", err)
		}
	}
	if err := t.Network.AdoptVeth(ctx, t.Endpoint); err != nil {
		return err
	}
	if err := (virtns.Firewall{}).AddPorts(ctx, t.ID, t.Endpoint.IP, t.Ports); err != nil {
		return err
	}
	if t.Held {
		return nil
	}
	return announce(ctx, t)
}

// Release lets a pod restored with Held run: it thaws it and announces
// its address. It is idempotent.
func Release(ctx context.Context, t Target) error {
	if err := virtns.Thaw(ctx, t.Config.CgroupPath); err != nil {
		return fmt.Errorf("release the held pod: %w", err)
	}
	return announce(ctx, t)
}

// announce tells the LAN's switches and neighbours where the pod's
// address lives now; the pod's MAC is the same as before, so this only
// moves forwarding entries.
//
// Then it asks again for the neighbours the pod's kernel is still
// resolving: their first requests went out while the veth was off the
// bridge, and the kernel would ask again only a second later.
func announce(ctx context.Context, t Target) error {
	if err := virtns.SendGratuitousARP(ctx, t.NetNSPath, virtns.PodInterface, t.Endpoint.IP, 1); err != nil {
		return err
	}
	_, err := virtns.ResolvePendingNeighbours(ctx, t.NetNSPath, virtns.PodInterface, t.Endpoint.IP)
	return err
}
