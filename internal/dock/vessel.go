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

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/pod/vesselpod"
	"github.com/podctl/podctl/wasm/snapshot"
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

// VesselHost keeps the vessels a dock receives: PlainVessels, or pods
// housing them on hosts with the namespace layer.
type VesselHost interface {
	// HasModule reports whether the host has a prepared module.
	HasModule(hash [32]byte) bool
	// ReceiveVessel makes a new vessel pod from a snapshot and resumes
	// it; it returns the pod's name. On failure nothing is left.
	ReceiveVessel(ctx context.Context, snap *snapshot.Snapshot, o vesselpod.RestoreOptions) (string, error)
	// RemoveVessel removes a received vessel pod, running or not.
	RemoveVessel(ctx context.Context, name string) error
}

// PlainVessels keeps received vessels as vessel pods of a store.
type PlainVessels struct{ Store vesselpod.Store }

// HasModule reports whether the store's cache has the prepared module.
func (p PlainVessels) HasModule(hash [32]byte) bool { return p.Store.HasModule(hash) }

// ReceiveVessel is vesselpod.Store.Receive.
func (p PlainVessels) ReceiveVessel(ctx context.Context, snap *snapshot.Snapshot, o vesselpod.RestoreOptions) (string, error) {
	m, err := p.Store.Receive(ctx, snap, o)
	if err != nil {
		return "", err
	}
	return m.Spec.Name, nil
}

// RemoveVessel is vesselpod.Store.Remove, forced.
func (p PlainVessels) RemoveVessel(ctx context.Context, name string) error {
	return p.Store.Remove(ctx, name, true)
}

// registerVessels adds the vessel endpoints to mux.
func (s *Server) registerVessels(mux *http.ServeMux) {
	mux.HandleFunc("GET "+pathModules+"{hash}", s.hasModule)
	mux.HandleFunc("POST "+pathVessels, s.receiveVessel)
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
	fail := func(err error) {
		s.Log.Warn("vessel receive failed", "pod", name, "err", err)
		json.NewEncoder(w).Encode(Event{Type: EventError, Error: err.Error(), Kind: int(errdefs.KindOf(err))})
	}
	counted := &byteCounter{r: r.Body}
	o := vesselpod.RestoreOptions{Name: name}
	snap, encoded, err := vesselpod.DecodeSnapshot(counted, r.ContentLength, o)
	if err != nil {
		fail(err)
		return
	}
	o.Encoded = encoded
	failpoint.Hit("dock:vessel-decoded")
	start := time.Now()
	pod, err := s.Vessels.ReceiveVessel(r.Context(), snap, o)
	if err != nil {
		fail(err)
		return
	}
	restore := time.Since(start)
	if err := json.NewEncoder(w).Encode(Event{Type: EventRestored, Pod: pod, Restore: restore, Bytes: counted.n}); err != nil {
		// The source cannot know the vessel runs here and will resume
		// its own: this one must go.
		s.Log.Warn("source went away before learning of the restore; removing the vessel", "pod", pod, "err", err)
		s.Vessels.RemoveVessel(context.WithoutCancel(r.Context()), pod)
		return
	}
	s.Log.Info("vessel restored", "pod", pod, "restore", restore, "bytes", counted.n)
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
	e := &eventReader{dec: json.NewDecoder(io.LimitReader(resp.Body, 1<<20)), dock: c.addr}
	return e.expect(EventRestored)
}
