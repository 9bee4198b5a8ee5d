//go:build linux && cgo

package dock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/restart"
	"github.com/podctl/podctl/virtns"
)

// Native is the dock's CRIU side: it receives native pods and restores
// them with its Manager. Only Linux builds with cgo have one.
type Native struct {
	// Manager restores received pods.
	Manager *pod.Manager
	// Limits bound what an archive may hold.
	Limits restart.Limits

	log      *slog.Logger
	mu       sync.Mutex
	sessions map[string]*session
}

// session joins a migration's archive request with its page tunnel.
type session struct {
	// tunnel receives the page tunnel's request once it arrives.
	tunnel chan pageTunnel
}

// pageTunnel is the dock's end of a page tunnel request: bytes from the
// source CRIU arrive on r and go back on w. The handler returns when done
// is closed.
type pageTunnel struct {
	r    io.Reader
	w    io.Writer
	done chan struct{}
}

// register adds the native endpoints to mux.
func (s *Native) register(mux *http.ServeMux, log *slog.Logger) {
	if s.Limits == (restart.Limits{}) {
		s.Limits = restart.DefaultLimits()
	}
	s.log = log
	s.sessions = map[string]*session{}
	mux.HandleFunc("POST "+pathPods, s.receive)
	mux.HandleFunc("POST "+pathPages, s.pages)
}

// nativeHello adds what this host's CRIU can do to h.
func nativeHello(ctx context.Context, h *Hello) {
	h.CRIUVersion = virtns.CRIUVersion(ctx)
	if h.CRIUVersion != "" {
		h.Capabilities = append(h.Capabilities, CapabilityCRIU, CapabilityCRIULazy)
	}
}

var sessionRE = regexp.MustCompile(`^[0-9a-f]{16,64}$`)

func (s *Native) openSession(id string) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[id]; ok {
		return nil, errdefs.New(errdefs.Conflict, "session %s is already in use", id)
	}
	ss := &session{tunnel: make(chan pageTunnel)}
	s.sessions[id] = ss
	return ss, nil
}

func (s *Native) closeSession(id string) {
	s.mu.Lock()
	delete(s.sessions, id)
	s.mu.Unlock()
}

// pages is the dock's end of a page tunnel: it hands the request's body
// and response to the session's archive handler and waits until that is
// done with them.
func (s *Native) pages(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("session")
	s.mu.Lock()
	ss := s.sessions[id]
	s.mu.Unlock()
	if ss == nil {
		http.Error(w, "no such session", http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return
	}
	t := pageTunnel{r: r.Body, w: flushWriter{w, rc}, done: make(chan struct{})}
	select {
	case ss.tunnel <- t:
		<-t.done
	case <-r.Context().Done():
	}
}

// flushWriter flushes every write, so the tunnel adds no latency.
type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}

// receive restores one migrating pod from the request's archive stream,
// reporting progress as JSON events.
func (s *Native) receive(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	id, lazy := q.Get("session"), q.Get("lazy") == "1"
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	send := func(e Event) error {
		if err := enc.Encode(e); err != nil {
			return err
		}
		return rc.Flush()
	}
	fail := func(err error) {
		s.log.Warn("receive failed", "session", id, "err", err)
		send(Event{Type: EventError, Error: err.Error(), Kind: int(errdefs.KindOf(err))})
	}
	if !sessionRE.MatchString(id) {
		fail(errdefs.New(errdefs.InvalidArgument, "bad session id"))
		return
	}
	ss, err := s.openSession(id)
	if err != nil {
		fail(err)
		return
	}
	defer s.closeSession(id)
	counted := &byteCounter{r: r.Body}
	rd, err := restart.NewReader(counted, s.Limits)
	if err != nil {
		fail(err)
		return
	}
	defer rd.Close()
	am, err := rd.Manifest()
	if err != nil {
		fail(err)
		return
	}
	in, err := s.Manager.Receive(ctx, am, pod.RestoreOptions{Name: q.Get("name"), Force: q.Get("force") == "1"})
	if err != nil {
		fail(err)
		return
	}
	defer in.Close()
	man := in.Manifest()
	log := s.log.With("session", id, "pod", man.Spec.Name, "ip", man.Endpoint.IP)
	if err := send(Event{Type: EventAccepted, Pod: man.Spec.Name, IP: man.Endpoint.IP.String()}); err != nil {
		log.Warn("source went away", "err", err)
		return
	}
	pagesDir := filepath.Join(in.Staging(), "pages")
	if err := os.Mkdir(pagesDir, 0o700); err != nil {
		fail(err)
		return
	}
	// Stop-and-copy: a page server receives memory while the source dumps.
	var pagesDone chan error
	if !lazy {
		pagesDone = make(chan error, 1)
		go func() { pagesDone <- s.tunnelTo(ctx, ss, pagesDir, virtns.PageServer) }()
	}
	failpoint.Hit("dock:accepted")
	ex, err := extractWatching(ctx, rd, filepath.Join(in.Staging(), "archive"), pagesDone)
	if err != nil {
		fail(err)
		return
	}
	failpoint.Hit("dock:extracted")
	var lazyDone chan error
	if lazy {
		lazyDone = make(chan error, 1)
		go func() { lazyDone <- s.tunnelTo(ctx, ss, ex.CRIUDir, virtns.LazyPages) }()
		if err := waitForFile(ctx, filepath.Join(ex.CRIUDir, "lazy-pages.socket"), lazyDone); err != nil {
			fail(fmt.Errorf("lazy-pages daemon: %w", err))
			return
		}
	} else {
		if err := <-pagesDone; err != nil { // (a nil from extractWatching was put back)
			fail(fmt.Errorf("receive pages: %w", err))
			return
		}
		if err := moveFiles(pagesDir, ex.CRIUDir); err != nil {
			fail(err)
			return
		}
	}
	start := time.Now()
	if _, err := in.Start(ctx, ex.CRIUDir, ex.UpperDir, lazy); err != nil {
		fail(err)
		return
	}
	restoreTime := time.Since(start)
	// Committed before the source is told: a dock that dies between the
	// two leaves the pod here as well as resumed at the source (a
	// duplicate), never nowhere (see ARCHITECTURE.md, the commit point).
	if err := in.Commit(); err != nil {
		fail(err)
		return
	}
	if err := send(Event{Type: EventRestored, Pod: man.Spec.Name, IP: man.Endpoint.IP.String(), Restore: restoreTime, Bytes: counted.n}); err != nil {
		// The source cannot know the pod runs here and will resume its
		// own copy: this one must go.
		log.Warn("source went away before learning of the restore; removing the pod", "err", err)
		if err := in.Undo(); err != nil {
			log.Error("removing the pod failed", "err", err)
		}
		return
	}
	log.Info("pod restored", "restore", restoreTime, "bytes", counted.n, "lazy", lazy)
	if lazy {
		if err := <-lazyDone; err != nil {
			log.Warn("post-copy failed", "err", err)
			send(Event{Type: EventError, Error: "post-copy: " + err.Error(), Kind: int(errdefs.KindOf(err))})
			return
		}
		send(Event{Type: EventComplete, Pod: man.Spec.Name})
		log.Info("post-copy complete")
	}
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

// tunnelTo runs a CRIU page helper (page server or lazy-pages daemon) on
// dir and connects it to the session's page tunnel once that arrives. The
// helper starts at once, so its start-up is not on the migration's
// critical path.
func (s *Native) tunnelTo(ctx context.Context, ss *session, dir string, helper func(context.Context, string, *os.File) error) error {
	ours, theirs, err := socketPair()
	if err != nil {
		return err
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	helperDone := make(chan error, 1)
	go func() {
		err := helper(hctx, dir, theirs)
		theirs.Close()
		helperDone <- err
	}()
	var t pageTunnel
	select {
	case t = <-ss.tunnel:
	case err := <-helperDone:
		ours.Close()
		return fmt.Errorf("page helper ended before the source connected: %w", err)
	case <-ctx.Done():
		cancel()
		<-helperDone
		ours.Close()
		return ctx.Err()
	case <-time.After(2 * time.Minute):
		cancel()
		<-helperDone
		ours.Close()
		return errors.New("the source never opened the page tunnel")
	}
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay(ours, t.r, t.w) }()
	err = <-helperDone
	// The helper's last words (the page server's final acknowledgement)
	// may still be in the socket: let the relay drain them, and the source
	// close its side, before ending the tunnel request.
	select {
	case <-relayDone:
	case <-time.After(10 * time.Second):
		ours.Close()
		close(t.done)
		<-relayDone
		return err
	}
	ours.Close()
	close(t.done)
	return err
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
