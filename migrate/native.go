//go:build linux && cgo

package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/dock"
	"github.com/podctl/podctl/internal/cpufeat"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/virtns"
)

// Native moves the running native pod name of m to the dock c through
// CRIU. The pod is checked against the dock, reserved there, frozen and
// dumped here with its memory streamed as CRIU produces it (or, with
// o.Live, served on demand once the pod runs there), restored there, and
// only then removed here. Any failure before the dock reports the pod
// running resumes it here.
func Native(ctx context.Context, m *pod.Manager, name string, c *dock.Client, o Options) (*Result, error) {
	start := time.Now()
	hello, err := c.Hello(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkDock(hello, o, cpufeat.Host); err != nil {
		return nil, fmt.Errorf("dock %s: %w", c.Addr(), err)
	}
	out, err := m.BeginMigration(ctx, name)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	res := &Result{Pod: name, Dock: c.Addr(), Mode: "criu", CRIUResult: &CRIUResult{IP: out.Manifest().Endpoint.IP.String()}}
	if o.Live {
		res.Mode = "criu-lazy"
	}

	// The archive request: its body is written below, as the pod is dumped.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	send, err := c.SendPod(rctx, dock.SendPodOptions{Name: o.Name, Force: o.Force, Lazy: o.Live})
	if err != nil {
		return nil, err
	}
	defer send.Close()
	res.Session = send.Session()
	// Unless the pod was handed over, whatever the dock may hold of it
	// goes (it never runs there without the word of this podctl).
	aw, err := sendManifest(ctx, send, out, o.Live)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", name, err)
	}
	defer func() {
		if !out.HandedOver() {
			abortAtDock(ctx, c, send.Session())
		}
	}()
	imagesDir, err := out.TempDir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(imagesDir)

	progress := newProgress(o.Progress, out.EstimatedBytes(), send)
	defer progress.stop()
	progress.phase("dump")
	lazy, err := dump(rctx, out, send, imagesDir, o.Live)
	if lazy != nil {
		defer lazy.abandon(cancel)
	}
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", name, err)
	}
	res.Freeze = out.LockedAt().Sub(out.FrozenAt())
	res.Dump = time.Since(out.LockedAt())
	progress.phase("transfer")
	if failpoint.Armed("migrate:cut-after-dump") {
		c.Cut()
	}

	transferStart := time.Now()
	if err := sendArchive(out, aw, send, imagesDir); err != nil {
		return nil, fmt.Errorf("migrate %s: send archive: %w", name, err)
	}
	res.Transfer = time.Since(transferStart)
	progress.phase("restore")
	if failpoint.Armed("migrate:cut-at-restored") {
		c.Cut()
	}
	ev, err := send.Restored()
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", name, err)
	}
	failpoint.Hit(ctx, "migrate:restored-read")
	// The commit point: the dock holds the pod prepared; once recorded
	// here as handed over, it must never run here again.
	if err := out.HandOver(pod.Handover{Dock: c.Addr(), Session: send.Session(), PKI: o.PKI, Cert: o.Cert}); err != nil {
		return nil, fmt.Errorf("migrate %s: %w", name, err)
	}
	failpoint.Hit(ctx, "migrate:handed-over")
	if failpoint.Armed("migrate:cut-at-commit") {
		c.Cut()
	}
	if err := commitAtDock(ctx, out, c, send.Session()); err != nil {
		return nil, fmt.Errorf("migrate %s: %w", name, err)
	}
	res.Downtime = time.Since(out.FrozenAt())
	res.Restore = ev.Restore
	res.Pod, res.IP = ev.Pod, ev.IP
	failpoint.Hit(ctx, "migrate:committed")
	if lazy != nil {
		progress.phase("post-copy")
		failpoint.Hit(ctx, "migrate:post-copy")
		if failpoint.Armed("migrate:cut-in-post-copy") {
			c.Cut()
		}
		if res.PostCopy, err = lazy.finish(send); err != nil {
			// The dock's pod cannot run without its memory: the dock
			// removes it and says so, and the pod runs here again; or
			// it had it all (only its word was lost) and runs there.
			lazy.abandon(cancel)
			if derr := commitAtDock(ctx, out, c, send.Session()); derr != nil {
				return nil, fmt.Errorf("migrate %s: post-copy failed (%v): %w", name, err, derr)
			}
		}
	}
	if err := commit(ctx, out, name); err != nil {
		return nil, err
	}
	res.Total = time.Since(start)
	res.ArchiveBytes, res.PageBytes = send.Sent()
	return res, nil
}

// sendManifest starts the archive with the pod's manifest and waits for
// the dock to accept the pod: to reserve its name, address and ports.
func sendManifest(ctx context.Context, send *dock.PodSend, out *pod.Outgoing, lazy bool) (*checkpoint.Writer, error) {
	am, err := out.ArchiveManifest(lazy)
	if err != nil {
		return nil, fmt.Errorf("send manifest: %w", err)
	}
	aw, err := checkpoint.NewWriter(archiveBody(send.Archive), checkpoint.CompressionNone, am)
	if err == nil {
		err = aw.Flush()
	}
	if err != nil {
		return nil, fmt.Errorf("send manifest: %w", err)
	}
	if err := send.Accepted(); err != nil {
		return nil, err
	}
	failpoint.Hit(ctx, "migrate:accepted")
	return aw, nil
}

// sendArchive sends the rest of the archive: the dumped images and the
// pod's writable layer, and the checksums. A dock that refused it says
// why.
func sendArchive(out *pod.Outgoing, aw *checkpoint.Writer, send *dock.PodSend, imagesDir string) error {
	if err := out.WriteArchive(aw, imagesDir); err != nil {
		return send.OrErr(err)
	}
	if err := aw.Close(); err != nil {
		return send.OrErr(err)
	}
	send.EndArchive()
	return nil
}

// dump dumps the pod into imagesDir, its memory through the page tunnel:
// as CRIU dumps it, or with lazy as the dock asks for it after the
// restore (then the returned lazyDump goes on serving pages).
func dump(ctx context.Context, out *pod.Outgoing, send *dock.PodSend, imagesDir string, lazy bool) (*lazyDump, error) {
	if lazy {
		return dumpLazily(ctx, out, send, imagesDir)
	}
	return nil, dumpToTunnel(ctx, out, send, imagesDir)
}

// archiveBody is where the archive goes: w, or a writer that corrupts or
// truncates it when a failpoint asks, to test the dock's verification.
func archiveBody(w io.Writer) io.Writer {
	if failpoint.Armed("migrate:corrupt-archive") {
		return &faultyWriter{w: w, at: 64 << 10, corrupt: true}
	}
	if failpoint.Armed("migrate:truncate-archive") {
		return &faultyWriter{w: w, at: 64 << 10}
	}
	return w
}

// dumpToTunnel dumps the pod for stop-and-copy: CRIU sends the pages to
// a socket of ours while it dumps, and they go through the page tunnel to
// the dock's page server.
func dumpToTunnel(ctx context.Context, out *pod.Outgoing, send *dock.PodSend, imagesDir string) error {
	theirs, tunnelDone, err := send.RelayPages(ctx)
	if err != nil {
		return err
	}
	err = out.Dump(ctx, virtns.CheckpointOptions{ImagesDir: imagesDir, PageServerConn: theirs})
	theirs.Close()
	if err != nil {
		// The dock's own account (a full disk, say) beats CRIU's "the
		// page server doesn't answer".
		return send.Explain(err)
	}
	if err := <-tunnelDone; err != nil {
		return fmt.Errorf("page transfer: %w", err)
	}
	return nil
}

// tunnelGrace is how long a lazy dump may take to end after its page
// tunnel has.
const tunnelGrace = 10 * time.Second

// lazyDump is a CRIU dump for post-copy: it has written everything but
// memory and serves pages until the destination has them all.
type lazyDump struct {
	done      chan error
	waited    bool
	forwarded <-chan error // the page tunnel, done
}

// dumpLazily starts a dump for post-copy and returns once CRIU serves
// pages, which go through the page tunnel to the dock's lazy-pages
// daemon. On failure it returns the dump too if it needs abandoning.
//
// CRIU serves on a socket it inherits, one end of a socket pair whose
// other end is the page tunnel's: no port on this host serves the pod's
// memory, which only the dock may read.
func dumpLazily(ctx context.Context, out *pod.Outgoing, send *dock.PodSend, imagesDir string) (*lazyDump, error) {
	theirs, forwarded, err := send.RelayPages(ctx)
	if err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	d := &lazyDump{done: make(chan error, 1), forwarded: forwarded}
	go func() {
		err := out.Dump(ctx, virtns.CheckpointOptions{ImagesDir: imagesDir, PageServerConn: theirs, Lazy: true, Ready: func() { close(ready) }})
		theirs.Close()
		d.done <- err
	}()
	select {
	case <-ready:
	case err := <-d.done:
		d.waited = true
		if err == nil {
			err = errors.New("CRIU finished without serving pages")
		}
		return nil, err
	}
	return d, nil
}

// finish waits for the dump to end, every page served, and the dock to
// confirm it has them all; it returns how long that took. The pod runs
// at the dock by then: on failure the caller asks the dock which copy
// lives on.
func (d *lazyDump) finish(send *dock.PodSend) (time.Duration, error) {
	start := time.Now()
	var err error
	select {
	case err = <-d.done:
		d.waited = true
	case ferr := <-d.forwarded:
		// The tunnel ends as CRIU closes its connection, or first if it
		// failed. Then CRIU may wait for ever for pages to be asked for:
		// unless it ends within tunnelGrace, abandon stops it.
		var grace <-chan time.Time
		if ferr != nil {
			grace = time.After(tunnelGrace)
		}
		select {
		case err = <-d.done:
			d.waited = true
		case <-grace:
			err = fmt.Errorf("page tunnel: %w", ferr)
		}
	}
	if err != nil {
		return 0, err
	}
	if err := send.Completed(); err != nil {
		return 0, fmt.Errorf("post-copy: %w", err)
	}
	return time.Since(start), nil
}

// abandon stops CRIU, by cancelling the dump's context, and lets the
// dump return (resuming the pod's tasks) before the pod is resumed here,
// unless the dump has already been waited for.
func (d *lazyDump) abandon(cancel context.CancelFunc) {
	if !d.waited {
		cancel()
		<-d.done
	}
}

// checkDock refuses a dock that cannot take a native pod from this host,
// whose CPU features hostFeatures reports (asked only without o.Force).
func checkDock(h *dock.Hello, o Options, hostFeatures func() (cpufeat.Features, error)) error {
	if h.ISA != runtime.GOARCH {
		return errdefs.New(errdefs.Unsupported, "dock is %s/%s and this pod is native %s code: only a Wasm vessel pod can change ISA", h.OS, h.ISA, runtime.GOARCH)
	}
	if !h.Has(dock.CapabilityCRIU) || (o.Live && !h.Has(dock.CapabilityCRIULazy)) {
		return errdefs.New(errdefs.Unsupported, "dock cannot restore CRIU images%s (capabilities: %s)", map[bool]string{true: " lazily", false: ""}[o.Live], strings.Join(h.Capabilities, ", "))
	}
	if o.Force {
		return nil
	}
	ours, err := hostFeatures()
	if err != nil {
		return err
	}
	if missing := cpufeat.Missing(h.CPUFeatures, ours); len(missing) > 0 {
		return errdefs.New(errdefs.Unsupported, "the dock's CPU lacks features the pod may use: %s (use --force to migrate anyway)", strings.Join(missing, " "))
	}
	return nil
}
