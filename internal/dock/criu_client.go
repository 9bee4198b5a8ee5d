//go:build linux && cgo

package dock

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/internal/cpufeat"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/virtns"
)

// Migrate moves a running pod to the dock c. The pod is checked against the
// dock, reserved there, frozen and dumped here with its memory streamed as
// CRIU produces it, restored there, and only then removed here. Any
// failure before the destination reports the pod running resumes it here.
func Migrate(ctx context.Context, m *pod.Manager, name string, c *Client, o MigrateOptions) (*MigrateResult, error) {
	start := time.Now()
	hello, err := c.Hello(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkDock(hello, o); err != nil {
		return nil, fmt.Errorf("dock %s: %w", c.addr, err)
	}
	out, err := m.BeginMigration(ctx, name)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	progress := func(phase string, sent int64) {}
	if o.Progress != nil {
		total := out.EstimatedBytes()
		progress = func(phase string, sent int64) { o.Progress(phase, sent, total) }
	}
	res := &MigrateResult{Pod: name, IP: out.Manifest().Endpoint.IP.String(), Dock: c.addr, Mode: "criu"}
	if o.Live {
		res.Mode = "criu-lazy"
	}
	sess := newSessionID()
	var archiveBytes, pageBytes atomic.Int64

	// The archive request: its body is written below, as the pod is dumped.
	q := url.Values{"session": {sess}}
	if o.Live {
		q.Set("lazy", "1")
	}
	if o.Name != "" {
		q.Set("name", o.Name)
	}
	if o.Force {
		q.Set("force", "1")
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.CloseWithError(errors.New("migration aborted"))
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.url(pathPods, q), pr)
	if err != nil {
		return nil, err
	}
	type response struct {
		resp *http.Response
		err  error
	}
	respCh := make(chan response, 1)
	go func() {
		resp, err := c.http.Do(req)
		respCh <- response{resp, err}
	}()
	var body io.Writer = countWriteCloser{pw, &archiveBytes}
	if failpoint.Armed("migrate:corrupt-archive") {
		body = &faultyWriter{w: body, at: 64 << 10, corrupt: true}
	} else if failpoint.Armed("migrate:truncate-archive") {
		body = &faultyWriter{w: body, at: 64 << 10}
	}
	aw, err := checkpoint.NewWriter(body, checkpoint.CompressionNone, out.ArchiveManifest(o.Live))
	if err == nil {
		err = aw.Flush()
	}
	if err != nil {
		return nil, fmt.Errorf("migrate %s: send manifest: %w", name, err)
	}
	r := <-respCh
	if r.err != nil {
		return nil, fmt.Errorf("migrate %s: dock %s: %w", name, c.addr, unwrapURLError(r.err))
	}
	defer r.resp.Body.Close()
	events := &eventReader{dec: json.NewDecoder(bufio.NewReader(r.resp.Body)), dock: c.addr}
	if _, err := events.expect(EventAccepted); err != nil {
		return nil, fmt.Errorf("migrate %s: %w", name, err)
	}
	failpoint.Hit("migrate:accepted")
	imagesDir, err := out.TempDir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(imagesDir)

	tunnel := &pageTunnelClient{c: c, session: sess, counter: &pageBytes}
	stopProgress := reportProgress(progress, &archiveBytes, &pageBytes)
	defer stopProgress()
	progress("dump", 0)
	var dumpDone chan error
	dumpWaited := false
	if !o.Live {
		// CRIU sends the pages on a socket we give it; we forward them.
		ours, theirs, err := socketPair()
		if err != nil {
			return nil, err
		}
		tunnelDone := make(chan error, 1)
		go func() { tunnelDone <- tunnel.relayLocal(rctx, ours) }()
		err = out.Dump(rctx, virtns.CheckpointOptions{ImagesDir: imagesDir, PageServerConn: theirs})
		theirs.Close()
		if err != nil {
			// The dock's own account (a full disk, say) beats CRIU's "the
			// page server doesn't answer".
			return nil, fmt.Errorf("migrate %s: %w", name, events.explain(err))
		}
		if err := <-tunnelDone; err != nil {
			return nil, fmt.Errorf("migrate %s: page transfer: %w", name, err)
		}
	} else {
		// CRIU dumps everything but memory, then serves pages: we
		// connect the destination's lazy-pages daemon to it.
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		ps := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
		ready := make(chan struct{})
		dumpDone = make(chan error, 1)
		// On any early return, stop CRIU and let the dump return (resuming
		// the pod's tasks) before Close resumes the pod.
		defer func() {
			if !dumpWaited {
				cancel()
				<-dumpDone
			}
		}()
		go func() {
			dumpDone <- out.Dump(rctx, virtns.CheckpointOptions{ImagesDir: imagesDir, PageServer: ps, Lazy: true, Ready: func() { close(ready) }})
		}()
		select {
		case <-ready:
		case err := <-dumpDone:
			dumpWaited = true
			if err == nil {
				err = errors.New("CRIU finished without serving pages")
			}
			return nil, fmt.Errorf("migrate %s: %w", name, err)
		}
		go tunnel.forwardDial(rctx, ps)
	}
	res.Freeze = out.LockedAt().Sub(out.FrozenAt())
	res.Dump = time.Since(out.LockedAt())
	progress("transfer", archiveBytes.Load()+pageBytes.Load())
	if failpoint.Armed("migrate:cut-after-dump") {
		c.cut()
	}
	transferStart := time.Now()
	if err := out.WriteArchive(aw, imagesDir); err != nil {
		return nil, fmt.Errorf("migrate %s: send archive: %w", name, events.orErr(err))
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("migrate %s: send archive: %w", name, events.orErr(err))
	}
	pw.Close()
	res.Transfer = time.Since(transferStart)
	progress("restore", archiveBytes.Load()+pageBytes.Load())
	ev, err := events.expect(EventRestored)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", name, err)
	}
	res.Downtime = time.Since(out.FrozenAt())
	res.Restore = ev.Restore
	res.Pod, res.IP = ev.Pod, ev.IP
	out.HandOver()
	failpoint.Hit("migrate:restored")
	if o.Live {
		pcStart := time.Now()
		progress("post-copy", archiveBytes.Load()+pageBytes.Load())
		err := <-dumpDone
		dumpWaited = true
		if err != nil {
			return nil, fmt.Errorf("migrate %s: post-copy failed after the pod resumed at %s (it stays frozen here: remove it with podctl rm -f): %w", name, c.addr, err)
		}
		if _, err := events.expect(EventComplete); err != nil {
			return nil, fmt.Errorf("migrate %s: post-copy: %w", name, err)
		}
		res.PostCopy = time.Since(pcStart)
	}
	if err := out.Commit(ctx); err != nil {
		return nil, err
	}
	res.Total = time.Since(start)
	res.ArchiveBytes, res.PageBytes = archiveBytes.Load(), pageBytes.Load()
	return res, nil
}

// checkDock refuses a dock that cannot take a native pod from this host.
func checkDock(h *Hello, o MigrateOptions) error {
	if h.ISA != runtime.GOARCH {
		return errdefs.New(errdefs.Unsupported, "dock is %s/%s and this pod is native %s code: only a Wasm vessel pod can change ISA", h.OS, h.ISA, runtime.GOARCH)
	}
	if !h.Has("criu") || (o.Live && !h.Has("criu-lazy")) {
		return errdefs.New(errdefs.Unsupported, "dock cannot restore CRIU images%s (capabilities: %s)", map[bool]string{true: " lazily", false: ""}[o.Live], strings.Join(h.Capabilities, ", "))
	}
	if o.Force {
		return nil
	}
	ours, err := cpufeat.Host()
	if err != nil {
		return err
	}
	if missing := cpufeat.Missing(h.CPUFeatures, ours); len(missing) > 0 {
		return errdefs.New(errdefs.Unsupported, "the dock's CPU lacks features the pod may use: %s (use --force to migrate anyway)", strings.Join(missing, " "))
	}
	return nil
}

// freePort finds a loopback TCP port nobody listens on, for CRIU's lazy
// page server (which binds it itself).
func freePort() (uint16, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port), nil
}
