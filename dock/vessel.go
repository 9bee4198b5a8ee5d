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
)

// Vessel migration adds two requests to the dock's protocol:
//
//	GET  /v1/modules/HASH            200 if the dock has the prepared module
//	POST /v1/vessels?name=N          a portable snapshot; the response is
//	                                 one JSON event: "restored" or "error"
//
// A snapshot is self-contained and small next to a native pod's memory, so
// it travels in one request once the vessel is stopped: the vessel's
// downtime is its time-to-safepoint, the capture, the transfer and the
// destination's resume.
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
	// carries; it returns the pod's name and how long the resume took.
	// On failure nothing is left.
	ReceiveVessel(ctx context.Context, t *VesselTransfer) (pod string, restore time.Duration, err error)
	// RemoveVessel removes a received vessel pod, running or not.
	RemoveVessel(ctx context.Context, name string) error
}

// VesselTransfer is one vessel arriving at a dock.
type VesselTransfer struct {
	// Body is the vessel's portable snapshot, Size bytes long by the
	// source's word (its Content-Length: a claim, 0 if unknown).
	Body io.Reader
	Size int64
	// Name names the pod (empty: the snapshot's).
	Name string
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
	name := r.URL.Query().Get("name")
	log := s.requestLog(r)
	counted := &byteCounter{r: r.Body}
	t := &VesselTransfer{
		Body: counted, Size: max(r.ContentLength, 0), Name: name,
		Memory: s.Memory.Lease(r.Context()), Disk: s.Disk.Lease(r.Context()),
	}
	defer t.Memory.Release()
	defer t.Disk.Release()
	send := eventSender(w)
	pod, restore, err := s.Vessels.ReceiveVessel(r.Context(), t)
	if err != nil {
		log.Warn("vessel receive failed", "pod", name, "err", err)
		send(Event{Type: EventError, Error: err.Error(), Kind: int(errdefs.KindOf(err))})
		return
	}
	// Flushed, a write to a source that has gone fails. (One that fails
	// to tell a source that did read the event would lose the vessel on
	// both hosts, so nothing else is taken for the source's absence: the
	// rest of that window is issue 16's commit protocol.)
	if err := send(Event{Type: EventRestored, Pod: pod, Restore: restore, Bytes: counted.n}); err != nil {
		// The source cannot know the vessel runs here and will resume
		// its own: this one must go.
		log.Warn("source went away before learning of the restore; removing the vessel", "pod", pod, "err", err)
		s.Vessels.RemoveVessel(context.WithoutCancel(r.Context()), pod)
		return
	}
	log.Info("vessel restored", "pod", pod, "restore", restore, "bytes", counted.n)
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
// resume as the pod name, and waits for its verdict: the "restored"
// event, or an error.
func (c *Client) SendVessel(ctx context.Context, body io.Reader, size int64, name string) (*Event, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(pathVessels, url.Values{"name": {name}}), body)
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
