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
	"regexp"
	"sync"
	"time"

	"github.com/podctl/podctl/internal/budget"
	"github.com/podctl/podctl/internal/errdefs"
)

// PodReceiver restores the native pods a dock receives. The dock hands it
// each migration as a PodTransfer: the archive stream, the page tunnel
// and the events that tell the source where things stand. podctl's is
// migrate.NativeReceiver; the dock itself knows nothing of pods or CRIU.
type PodReceiver interface {
	// Describe adds what the receiver can restore to h: its CRIU version
	// and Capability* values.
	Describe(ctx context.Context, h *Hello)
	// ReceivePod restores the pod that t carries, and holds it until its
	// source decides (Decide). An error it returns goes to the source as
	// an error event; on failure it leaves nothing behind.
	ReceivePod(ctx context.Context, t *PodTransfer) error
	// Decide carries out the source's decision on the pod it sent in
	// session: run it (commit) or remove it. Repeating a decision
	// carried out is not an error; committing a session never received
	// is an errdefs.NotFound.
	Decide(ctx context.Context, session string, commit bool) error
}

// PodTransfer is one native pod arriving at a dock.
type PodTransfer struct {
	// Archive is the pod's archive as the source streams it.
	Archive io.Reader
	// Name renames the pod (empty: keep its name), Force skips the CPU
	// feature check, Lazy asks for post-copy: the source's options.
	Name  string
	Force bool
	Lazy  bool
	// Log is the dock's logger, tagged with the migration's session.
	Log *slog.Logger
	// Disk is the migration's lease of the dock's disk budget: the
	// receiver reserves there the space of the archive it extracts
	// before writing it; the dock reserves the pages a stop-and-copy
	// tunnel carries as they arrive. The dock releases it when the
	// request ends. When a receive fails after a reservation was
	// refused, the source is told of the refusal.
	Disk *budget.Lease

	archive *byteCounter
	send    func(Event) error
	session *session
	id      string
}

// Session is the migration's session: the source names it when it
// decides (see PodReceiver.Decide).
func (t *PodTransfer) Session() string { return t.id }

// ArchiveBytes is how many archive bytes have been read so far.
func (t *PodTransfer) ArchiveBytes() int64 { return t.archive.n }

// Accepted tells the source that the manifest was checked and the pod's
// name, address and ports are reserved: it may freeze the pod.
func (t *PodTransfer) Accepted(pod, ip string) error {
	return t.send(Event{Type: EventAccepted, Pod: pod, IP: ip})
}

// Restored tells the source that the pod runs here, restored in restore.
// Once it returns nil, the source removes its copy.
func (t *PodTransfer) Restored(pod, ip string, restore time.Duration) error {
	return t.send(Event{Type: EventRestored, Pod: pod, IP: ip, Restore: restore, Bytes: t.archive.n})
}

// Complete tells the source that every page of a post-copy has arrived.
func (t *PodTransfer) Complete(pod string) error {
	return t.send(Event{Type: EventComplete, Pod: pod})
}

// TunnelPages runs helper, a CRIU page server or lazy-pages daemon
// serving on the socket it is given, and joins that socket to the
// migration's page tunnel once the source opens it. It returns when the
// helper does.
//
// The pages of a stop-and-copy migration go to disk (a page server
// writes them into the images): each is reserved from t.Disk as it
// arrives, and the tunnel fails when the budget refuses. Post-copy's go
// into the pod's memory: if the tunnel breaks, broken (if set) is called
// before the helper learns of it. It must stop the pod: a lazy-pages
// daemon that exits unregisters the pod's memory, whose missing pages
// then read as zeros.
func (t *PodTransfer) TunnelPages(ctx context.Context, helper func(context.Context, *os.File) error, broken func()) error {
	var disk *budget.Lease
	if !t.Lazy {
		disk = t.Disk
	}
	return tunnelTo(ctx, t.session, helper, disk, broken)
}

// sessions joins each migration's archive request with its page tunnel.
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
}

// session is one migration's meeting point.
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

var sessionRE = regexp.MustCompile(`^[0-9a-f]{16,64}$`)

func (s *sessions) open(id string) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[id]; ok {
		return nil, errdefs.New(errdefs.Conflict, "session %s is already in use", id)
	}
	if s.byID == nil {
		s.byID = map[string]*session{}
	}
	ss := &session{tunnel: make(chan pageTunnel)}
	s.byID[id] = ss
	return ss, nil
}

func (s *sessions) close(id string) {
	s.mu.Lock()
	delete(s.byID, id)
	s.mu.Unlock()
}

func (s *sessions) get(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

// pages is the dock's end of a page tunnel: it hands the request's body
// and response to the session's archive handler and waits until that is
// done with them.
func (s *Server) pages(w http.ResponseWriter, r *http.Request) {
	ss := s.sessions.get(r.URL.Query().Get("session"))
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

// eventSender returns the function that sends w's events, each flushed
// at once: an event held in the response's buffer would reach the
// source only when the handler returns, and its error would say nothing
// of whether the source got it.
func eventSender(w http.ResponseWriter) func(Event) error {
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	return func(e Event) error {
		if err := enc.Encode(e); err != nil {
			return err
		}
		return rc.Flush()
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

// receivePod hands one migrating pod's archive stream to the receiver,
// reporting progress as JSON events.
func (s *Server) receivePod(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("session")
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	send := eventSender(w)
	log := s.requestLog(r).With("session", id)
	fail := func(err error) {
		log.Warn("receive failed", "err", err)
		send(Event{Type: EventError, Error: err.Error(), Kind: int(errdefs.KindOf(err))})
	}
	if !sessionRE.MatchString(id) {
		fail(errdefs.New(errdefs.InvalidArgument, "bad session id"))
		return
	}
	ss, err := s.sessions.open(id)
	if err != nil {
		fail(err)
		return
	}
	defer s.sessions.close(id)
	counted := &byteCounter{r: r.Body}
	t := &PodTransfer{
		Archive: counted, Name: q.Get("name"), Force: q.Get("force") == "1", Lazy: q.Get("lazy") == "1",
		Log: log, Disk: s.Disk.Lease(r.Context()), archive: counted, send: send, session: ss, id: id,
	}
	defer t.Disk.Release()
	if err := s.Pods.ReceivePod(r.Context(), t); err != nil {
		// A refused reservation is the cause, whatever the receiver or
		// CRIU made of it (a page server whose tunnel ended early).
		if refused := t.Disk.Err(); refused != nil && !errors.Is(err, refused) {
			err = fmt.Errorf("%w (then: %v)", refused, err)
		}
		fail(err)
	}
}

// decideSession hands a decision to the receiver that has the session: a
// session names one migration, of a native pod or of a vessel. A commit
// goes to the native pods first (theirs is the commonest, and its
// downtime waits for it), then, unknown there, to the vessels; a commit
// that neither knows is an errdefs.NotFound. An abort goes to both.
func (s *Server) decideSession(ctx context.Context, id string, commit bool) error {
	if s.Pods == nil {
		return s.Vessels.Decide(ctx, id, commit)
	}
	err := s.Pods.Decide(ctx, id, commit)
	switch {
	case commit && errdefs.KindOf(err) == errdefs.NotFound:
		return s.Vessels.Decide(ctx, id, commit)
	case commit:
		return err
	}
	return errors.Join(err, s.Vessels.Decide(ctx, id, commit))
}

// decide carries out a source's decision on the pod it migrated here
// (Client.Decide), and answers with one event.
func (s *Server) decide(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, commit := q.Get("session"), q.Get("commit") == "1"
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	send := eventSender(w)
	log := s.requestLog(r).With("session", id, "commit", commit)
	err := errdefs.New(errdefs.InvalidArgument, "bad session id")
	if sessionRE.MatchString(id) {
		// Carried out in full even if the source goes meanwhile: it will
		// ask again, and find it done.
		err = s.decideSession(context.WithoutCancel(r.Context()), id, commit)
	}
	if err != nil {
		log.Warn("decision failed", "err", err)
		send(Event{Type: EventError, Error: err.Error(), Kind: int(errdefs.KindOf(err))})
		return
	}
	log.Info("migration decided")
	send(Event{Type: EventDecided})
}
