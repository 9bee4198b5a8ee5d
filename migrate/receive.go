//go:build linux && cgo

package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/podctl/podctl/dock"
	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/restart"
	"github.com/podctl/podctl/virtns"
)

// NativeReceiver is the destination side of a migration through CRIU: it
// restores the native pods a dock receives with its Manager.
type NativeReceiver struct {
	// Manager restores received pods.
	Manager *pod.Manager
	// Limits bound what an archive may hold (zero: restart.DefaultLimits).
	Limits restart.Limits
	// Images are the images received pods may have.
	Images pod.ImagePolicy
}

// Describe adds this host's CRIU, if it has one, to h.
func (r NativeReceiver) Describe(ctx context.Context, h *dock.Hello) {
	h.CRIUVersion = virtns.CRIUVersion(ctx)
	if h.CRIUVersion != "" {
		h.Capabilities = append(h.Capabilities, dock.CapabilityCRIU, dock.CapabilityCRIULazy)
	}
}

// ReceivePod restores one migrating pod from t's archive stream: it
// reserves the pod, receives its memory through the page tunnel while
// the archive is extracted (or, lazily, after the pod has resumed),
// restores it frozen and records it prepared before telling the source,
// whose commit (Decide) runs it. The space of what it extracts is
// reserved from t.Disk first.
func (r NativeReceiver) ReceivePod(ctx context.Context, t *dock.PodTransfer) error {
	limits := r.Limits
	if limits == (restart.Limits{}) {
		limits = restart.DefaultLimits()
	}
	limits.PlainOnly = true // sendManifest's CompressionNone
	rd, err := restart.NewReader(t.Archive, limits)
	if err != nil {
		return err
	}
	defer rd.Close()
	if t.Disk != nil {
		rd.ReserveWith(t.Disk)
	}
	am, err := rd.Manifest()
	if err != nil {
		return err
	}
	in, err := r.Manager.Receive(ctx, am, pod.RestoreOptions{Name: t.Name, Force: t.Force, Images: &r.Images, RefusePrivileged: true})
	if err != nil {
		return err
	}
	defer in.Close()
	man := in.Manifest()
	name, ip := man.Spec.Name, man.Endpoint.IP.String()
	log := t.Log.With("pod", name, "ip", ip)
	if err := t.Accepted(name, ip); err != nil {
		return fmt.Errorf("source went away: %w", err)
	}
	// Should post-copy's tunnel break, the pod stops before the
	// lazy-pages daemon learns of it (and lets missing pages read as
	// zeros): it must never run without its memory. While CRIU still
	// restores it, it is not frozen (that would freeze CRIU's own
	// processes in the pod's cgroup, which a cancelled receive could then
	// never kill): the restore ends with the pod frozen anyway, and the
	// break is then taken as lost pages.
	tunnel := &tunnelState{}
	broken := func() {
		if !tunnel.broke() {
			return
		}
		if err := in.Freeze(context.WithoutCancel(ctx)); err != nil {
			log.Error("post-copy broke and the pod could not be frozen", "err", err)
		}
	}
	images, err := receiveImages(ctx, t, rd, in.Staging(), broken)
	if err != nil {
		return err
	}
	start := time.Now()
	// Restored frozen and recorded as prepared before the source is
	// told: it runs only on the source's commit (see ARCHITECTURE.md,
	// the commit point), so that whatever dies, it never runs twice.
	if err := in.Prepare(ctx, images.ex, t.Lazy, t.Session()); err != nil {
		return err
	}
	if tunnel.restored() {
		log.Warn("post-copy broke while the pod was restored: it cannot run without its memory; removing it")
		if err := in.PagesLost(ctx); err != nil {
			log.Error("removing the pod failed", "err", err)
		}
		return errors.New("post-copy: the page tunnel broke during the restore")
	}
	restoreTime := time.Since(start)
	failpoint.Hit(ctx, "dock:prepared")
	if err := t.Restored(name, ip, restoreTime); err != nil {
		// The source never commits what it did not hear of: without
		// this, the prepared pod would wait for its abort.
		log.Warn("source went away before learning of the restore; removing the pod", "err", err)
		if err := r.Manager.Decide(ctx, t.Session(), false); err != nil {
			log.Error("removing the pod failed", "err", err)
		}
		return fmt.Errorf("source went away: %w", err)
	}
	failpoint.Hit(ctx, "dock:restored-sent")
	log.Info("pod restored, waiting for the source's commit", "restore", restoreTime, "bytes", t.ArchiveBytes(), "lazy", t.Lazy)
	if images.lazyDone != nil {
		if err := <-images.lazyDone; err != nil {
			// The source learns it when it asks (Decide: no such pod)
			// and runs its own copy again.
			log.Warn("post-copy failed: the pod cannot run without its memory; removing it", "err", err)
			if rerr := in.PagesLost(ctx); rerr != nil {
				log.Error("removing the pod failed", "err", rerr)
			}
			return fmt.Errorf("post-copy: %w", err)
		}
		if err := in.PagesArrived(ctx); err != nil {
			return fmt.Errorf("post-copy: %w", err)
		}
		t.Complete(name)
		log.Info("post-copy complete")
	}
	return nil
}

// Decide carries out the source's decision on the pod it sent in
// session (pod.Manager.Decide).
func (r NativeReceiver) Decide(ctx context.Context, session string, commit bool) error {
	return r.Manager.Decide(ctx, session, commit)
}

// receivedImages is where a received pod's CRIU images and writable
// layer are, and, for post-copy, the lazy-pages daemon's end.
type receivedImages struct {
	ex       *restart.Extracted
	lazyDone <-chan error
}

// receiveImages extracts the archive into staging and receives the pod's
// memory: with stop-and-copy, from the page server that runs meanwhile;
// with post-copy, by starting the lazy-pages daemon that will fetch it
// (broken stops the pod if its tunnel breaks).
func receiveImages(ctx context.Context, t *dock.PodTransfer, rd *restart.Reader, staging string, broken func()) (*receivedImages, error) {
	pagesDir := filepath.Join(staging, "pages")
	if err := os.Mkdir(pagesDir, 0o700); err != nil {
		return nil, err
	}
	// Stop-and-copy: a page server receives memory while the source dumps.
	var pagesDone chan error
	if !t.Lazy {
		pagesDone = make(chan error, 1)
		go func() { pagesDone <- t.TunnelPages(ctx, pageHelper(virtns.PageServer, pagesDir), nil) }()
	}
	failpoint.Hit(ctx, "dock:accepted")
	ex, err := extractWatching(ctx, rd, filepath.Join(staging, "archive"), pagesDone)
	if err != nil {
		return nil, err
	}
	failpoint.Hit(ctx, "dock:extracted")
	images := &receivedImages{ex: ex}
	if t.Lazy {
		lazyDone := make(chan error, 1)
		go func() { lazyDone <- t.TunnelPages(ctx, pageHelper(virtns.LazyPages, ex.CRIUDir), broken) }()
		if err := waitForFile(ctx, filepath.Join(ex.CRIUDir, "lazy-pages.socket"), lazyDone); err != nil {
			return nil, fmt.Errorf("lazy-pages daemon: %w", err)
		}
		images.lazyDone = lazyDone
		return images, nil
	}
	if err := <-pagesDone; err != nil { // (a nil from extractWatching was put back)
		return nil, fmt.Errorf("receive pages: %w", err)
	}
	if err := moveFiles(pagesDir, ex.CRIUDir); err != nil {
		return nil, err
	}
	return images, nil
}

// pageHelper binds a CRIU page helper (virtns.PageServer or LazyPages) to
// its images directory.
func pageHelper(helper func(context.Context, string, *os.File) error, dir string) func(context.Context, *os.File) error {
	return func(ctx context.Context, conn *os.File) error { return helper(ctx, dir, conn) }
}

// extractWatching extracts the archive while the page server receives
// memory, and fails as soon as either does: a page server that ran out of
// disk explains the failure better than the stream the source then
// abandons. A page server that finished without error is put back on
// pagesDone for the caller.
func extractWatching(ctx context.Context, rd *restart.Reader, dir string, pagesDone chan error) (*restart.Extracted, error) {
	type result struct {
		ex  *restart.Extracted
		err error
	}
	exDone := make(chan result, 1)
	go func() {
		ex, err := rd.Extract(ctx, dir)
		exDone <- result{ex, err}
	}()
	select {
	case r := <-exDone:
		return r.ex, r.err
	case err := <-pagesDone:
		if err != nil {
			return nil, fmt.Errorf("receive pages: %w", err)
		}
		pagesDone <- nil
		r := <-exDone
		return r.ex, r.err
	}
}

// moveFiles moves every file of src into dst.
func moveFiles(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// waitForFile polls for path to appear, failing early if exited reports.
func waitForFile(ctx context.Context, path string, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case err := <-exited:
			if err == nil {
				err = errors.New("exited early")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// tunnelState orders a post-copy tunnel's break with the end of the
// restore: a break during the restore is left to the restore's end (see
// NativeReceiver.ReceivePod).
type tunnelState struct {
	mu                      sync.Mutex
	restoreDone, brokeEarly bool
}

// broke records the tunnel's break, and reports whether the restore had
// ended (the pod must then be frozen at once).
func (s *tunnelState) broke() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.brokeEarly = !s.restoreDone
	return s.restoreDone
}

// restored records the restore's end, and reports whether the tunnel
// broke during it.
func (s *tunnelState) restored() (brokeEarly bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restoreDone = true
	return s.brokeEarly
}
