package dock

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/podctl/podctl/internal/budget"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/failpoint"
)

// Vessel migration adds two requests to the dock's protocol:
//
//	GET  /v1/modules/HASH            200 if the dock has the prepared module
//	POST /v1/vessels?name=N&session=S
//	                                 a portable snapshot; the response is
//	                                 one JSON event: "restored" (the
//	                                 vessel is held prepared) or "error"
//	POST /v1/decide?session=S[&commit=1]
//	                                 the source's decision, as for a
//	                                 native pod: run the vessel, or remove it
//
// A snapshot is self-contained and small next to a native pod's memory, so
// it travels in one request once the vessel is stopped: the vessel's
// downtime is its time-to-safepoint, the capture, the transfer, the
// destination's resume and the commit.
const (
	pathModules = "/v1/modules/"
	pathVessels = "/v1/vessels"
)

// VesselReceiver resumes the vessels a dock receives. podctl's is
// migrate.VesselReceiver; the dock itself knows nothing of snapshots.
type VesselReceiver interface {
	// HasModule reports whether the receiver has a prepared module.
	HasModule(hash [32]byte) bool
	// ReceiveVessel resumes the vessel whose portable snapshot t
	// carries, held until its source decides (Decide); it returns the
	// pod's name and how long the resume took. On failure nothing is
	// left.
	ReceiveVessel(ctx context.Context, t *VesselTransfer) (pod string, restore time.Duration, err error)
	// Decide carries out the source's decision on the vessel it sent in
	// session: run it (commit) or remove it. Repeating a decision
	// carried out is not an error; committing a session never received
	// is an errdefs.NotFound.
	Decide(ctx context.Context, session string, commit bool) error
}

// VesselTransfer is one vessel arriving at a dock.
type VesselTransfer struct {
	// Body is the vessel's portable snapshot, Size bytes long by the
	// source's word (its Content-Length: a claim, 0 if unknown).
	Body io.Reader
	Size int64
	// Name names the pod (empty: the snapshot's).
	Name string
	// Session is the migration's session, in which the source decides.
	Session string
	// Memory is the request's lease of the dock's memory budget: the
	// receiver reserves there what it allocates for the vessel before
	// allocating it. Disk is its lease of the disk budget, for what the
	// receiver writes until the vessel runs. The dock releases both when
	// the request ends. (Leases of a dock without budgets reserve
	// anything.)
	Memory, Disk *budget.Lease
}

func (s *Server) hasModule(w http.ResponseWriter, r *http.Request) {
	h, err := hex.DecodeString(r.PathValue("hash"))
	var hash [32]byte
	if err != nil || len(h) != len(hash) {
		http.Error(w, "bad module hash", http.StatusBadRequest)
		return
	}
	copy(hash[:], h)
	if !s.Vessels.HasModule(hash) {
		http.Error(w, "no such module", http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// receiveVessel resumes a migrating vessel from the request's snapshot.
func (s *Server) receiveVessel(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	name, session := r.URL.Query().Get("name"), r.URL.Query().Get("session")
	log := s.requestLog(r).With("session", session)
	send := eventSender(w)
	if !sessionRE.MatchString(session) {
		send(Event{Type: EventError, Error: "bad session id", Kind: int(errdefs.InvalidArgument)})
		return
	}
	counted := &byteCounter{r: r.Body}
	t := &VesselTransfer{
		Body: counted, Size: max(r.ContentLength, 0), Name: name, Session: session,
		Memory: s.Memory.Lease(r.Context()), Disk: s.Disk.Lease(r.Context()),
	}
	defer t.Memory.Release()
	defer t.Disk.Release()
	pod, restore, err := s.Vessels.ReceiveVessel(r.Context(), t)
	if err != nil {
		log.Warn("vessel receive failed", "pod", name, "err", err)
		send(Event{Type: EventError, Error: err.Error(), Kind: int(errdefs.KindOf(err))})
		return
	}
	failpoint.Hit(r.Context(), "dock:prepared")
	// Flushed, a write to a source that has gone fails: it never heard
	// of the prepared vessel, so it can only run its own on. (A write
	// that succeeds proves nothing: the vessel waits for the source's
	// decision either way.)
	if err := send(Event{Type: EventRestored, Pod: pod, Restore: restore, Bytes: counted.n}); err != nil {
		log.Warn("source went away before learning of the restore; removing the vessel", "pod", pod, "err", err)
		s.Vessels.Decide(context.WithoutCancel(r.Context()), session, false)
		return
	}
	failpoint.Hit(r.Context(), "dock:restored-sent")
	log.Info("vessel restored, held for its source's decision", "pod", pod, "restore", restore, "bytes", counted.n)
}

// byteCounter counts the bytes read through it.
type byteCounter struct {
	r io.Reader
	n int64
}

func (c *byteCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// HasModule asks the dock whether it has a prepared module; an error
// counts as no.
func (c *Client) HasModule(ctx context.Context, hash [32]byte) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(pathModules+hex.EncodeToString(hash[:]), nil), nil)
	if err != nil {
		return false
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// SendVessel posts a vessel's snapshot of size bytes, for the dock to
// resume as the pod name in the migration session (NewSession), and
// waits for its verdict: the "restored" event (the vessel is held until
// Decide), or an error.
func (c *Client) SendVessel(ctx context.Context, body io.Reader, size int64, name, session string) (*Event, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(pathVessels, url.Values{"name": {name}, "session": {session}}), body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dock %s: send snapshot: %w", c.addr, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("dock %s: send snapshot: %s", c.addr, resp.Status)
	}
	e := &eventReader{ctx: ctx, dec: json.NewDecoder(io.LimitReader(resp.Body, 1<<20)), dock: c.addr}
	return e.expect(EventRestored)
}
