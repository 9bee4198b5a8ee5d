package dock

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
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

// VesselMigrateResult reports a finished vessel migration.
type VesselMigrateResult struct {
	Pod  string `json:"pod"`
	Dock string `json:"dock"`
	// Mode is "wasm".
	Mode string `json:"mode"`
	// ISA is the destination's.
	ISA string `json:"isa"`
	// Safepoint is the time-to-safepoint; Capture reading the vessel's
	// state; Write encoding the snapshot; Transfer sending it; Restore the
	// destination's resume; Downtime from the stop request to this host
	// learning the vessel runs at the destination.
	Safepoint time.Duration `json:"safepointNs"`
	Capture   time.Duration `json:"captureNs"`
	Write     time.Duration `json:"writeNs"`
	Transfer  time.Duration `json:"transferNs"`
	Restore   time.Duration `json:"restoreNs"`
	Downtime  time.Duration `json:"downtimeNs"`
	Total     time.Duration `json:"totalNs"`
	// Bytes is the snapshot's size; WithModule says whether it carried
	// the module (the dock did not have it).
	Bytes      int64 `json:"bytes"`
	WithModule bool  `json:"withModule"`
}

// MigrateVessel moves the running vessel name of store to the dock c,
// whatever its ISA, as the pod as (name if empty): the vessel is stopped
// at a poll point, its snapshot (with the module unless the dock has it)
// sent and resumed there, and only then ended and removed here. Any
// failure before the dock reports it running lets it run on here.
func MigrateVessel(ctx context.Context, store vesselpod.Store, name, as string, c *Client) (*VesselMigrateResult, error) {
	if as == "" {
		as = name
	}
	start := time.Now()
	hello, err := c.Hello(ctx)
	if err != nil {
		return nil, err
	}
	if !hello.Has(CapabilityWasm) {
		return nil, errdefs.New(errdefs.Unsupported, "dock %s does not take Wasm vessels (capabilities: %v)", c.addr, hello.Capabilities)
	}
	res := &VesselMigrateResult{Pod: as, Dock: c.addr, Mode: "wasm", ISA: hello.ISA}
	out, err := store.BeginMigration(ctx, name)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	res.WithModule = !c.hasModule(ctx, out.ModuleHash())
	stopped, err := out.Stop(ctx, res.WithModule)
	if err != nil {
		return nil, err
	}
	res.Safepoint, res.Capture, res.Write, res.Bytes = stopped.Safepoint, stopped.Capture, stopped.Write, stopped.Bytes
	f, err := os.Open(out.SnapshotPath())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	t := time.Now()
	ev, err := c.sendVessel(ctx, f, st.Size(), as)
	if err != nil {
		return nil, err
	}
	res.Transfer = time.Since(t) - ev.Restore
	res.Restore = ev.Restore
	res.Downtime = time.Since(out.StoppedAt())
	failpoint.Hit("migrate:vessel-restored")
	if err := out.Commit(ctx); err != nil {
		return nil, fmt.Errorf("vessel %s runs at the destination, but removing it here failed: %w", name, err)
	}
	res.Total = time.Since(start)
	return res, nil
}

// hasModule asks the dock whether it has a prepared module.
func (c *Client) hasModule(ctx context.Context, hash [32]byte) bool {
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

// sendVessel posts a snapshot of size bytes and waits for the dock's
// verdict.
func (c *Client) sendVessel(ctx context.Context, body io.Reader, size int64, name string) (*Event, error) {
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
