package dock

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
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
	"sync"
	"sync/atomic"
	"time"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/internal/cpufeat"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/virtns"
)

// Client talks to one dock.
type Client struct {
	addr string
	http *http.Client

	mu    sync.Mutex
	conns []net.Conn // for failpoints that cut the connection
}

// NewClient returns a client for the dock at addr (host:port), presenting
// the certificate in tlsConfig (pki.ClientConfig).
func NewClient(addr string, tlsConfig *tls.Config) *Client {
	c := &Client{addr: addr}
	cfg := tlsConfig.Clone()
	cfg.NextProtos = []string{"h2"}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}
	tr := &http.Transport{
		TLSClientConfig:     cfg,
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err == nil {
				c.mu.Lock()
				c.conns = append(c.conns, conn)
				c.mu.Unlock()
			}
			return conn, err
		},
	}
	var p http.Protocols
	p.SetHTTP2(true)
	tr.Protocols = &p
	tr.HTTP2 = http2Config()
	c.http = &http.Client{Transport: tr}
	return c
}

// http2Config sizes flow control for bulk transfer and pings an idle peer
// so that a dead link fails a migration in seconds rather than hanging it
// until TCP gives up.
func http2Config() *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxReceiveBufferPerStream:     streamWindow,
		MaxReceiveBufferPerConnection: 2 * streamWindow,
		SendPingTimeout:               5 * time.Second,
		PingTimeout:                   5 * time.Second,
	}
}

// cut closes the connections to the dock abruptly (failpoint).
func (c *Client) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
}

// Close releases the client's connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func (c *Client) url(path string, q url.Values) string {
	u := url.URL{Scheme: "https", Host: c.addr, Path: path, RawQuery: q.Encode()}
	return u.String()
}

// Hello asks the dock what it is.
func (c *Client) Hello(ctx context.Context) (*Hello, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(pathHello, nil), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		err = unwrapURLError(err)
		var verr *tls.CertificateVerificationError
		if msg := err.Error(); errors.As(err, &verr) || strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: ") {
			return nil, errdefs.New(errdefs.Unsupported, "dock %s: mutual TLS authentication failed (certificates of another CA?): %v", c.addr, err)
		}
		return nil, errdefs.New(errdefs.Unsupported, "dock %s is unreachable: %v", c.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("dock %s: hello: %s", c.addr, resp.Status)
	}
	var h Hello
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&h); err != nil {
		return nil, fmt.Errorf("dock %s: hello: %w", c.addr, err)
	}
	return &h, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// MigrateOptions tune Migrate.
type MigrateOptions struct {
	// Live uses post-copy: the pod resumes at the destination before its
	// memory has arrived, which CRIU then fetches on demand and in the
	// background.
	Live bool
	// Name renames the pod at the destination.
	Name string
	// Force skips the CPU feature check.
	Force bool
	// Progress, if set, is called now and then with the phase, the bytes
	// sent so far and an estimate of the total (the pod's memory use).
	Progress func(phase string, sent, total int64)
}

// MigrateResult reports a finished migration.
type MigrateResult struct {
	Pod  string `json:"pod"`
	IP   string `json:"ip"`
	Dock string `json:"dock"`
	// Mode is "criu" (stop-and-copy) or "criu-lazy" (post-copy).
	Mode string `json:"mode"`
	// Freeze is from the freeze to the start of CRIU's dump (network
	// lock included); Dump is CRIU's dump (with stop-and-copy it sends
	// the memory too); Transfer is sending the rest of the archive;
	// Restore is the destination's restore; Downtime runs from the pod's
	// last moment running here to the moment this host learnt it runs at
	// the destination (so it includes half a round trip more than the
	// true downtime); PostCopy is how long memory kept arriving after
	// that (--live).
	Freeze   time.Duration `json:"freezeNs"`
	Dump     time.Duration `json:"dumpNs"`
	Transfer time.Duration `json:"transferNs"`
	Restore  time.Duration `json:"restoreNs"`
	Downtime time.Duration `json:"downtimeNs"`
	PostCopy time.Duration `json:"postCopyNs,omitempty"`
	Total    time.Duration `json:"totalNs"`
	// ArchiveBytes and PageBytes are what was sent: the archive stream
	// and the memory pages tunnel.
	ArchiveBytes int64 `json:"archiveBytes"`
	PageBytes    int64 `json:"pageBytes"`
}

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

func newSessionID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
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

// eventReader reads a receive response's events.
type eventReader struct {
	dec  *json.Decoder
	dock string
	err  error
}

// expect reads the next event and fails unless it has type typ.
func (e *eventReader) expect(typ string) (*Event, error) {
	var ev Event
	if err := e.dec.Decode(&ev); err != nil {
		e.err = fmt.Errorf("dock %s went away (%v)", e.dock, err)
		return nil, e.err
	}
	if ev.Type == EventError {
		k := errdefs.Kind(ev.Kind)
		if k == 0 {
			k = errdefs.Internal
		}
		e.err = errdefs.New(k, "dock %s: %s", e.dock, ev.Error)
		return nil, e.err
	}
	if ev.Type != typ {
		e.err = fmt.Errorf("dock %s: expected %q, got %q", e.dock, typ, ev.Type)
		return nil, e.err
	}
	return &ev, nil
}

// explain returns the dock's error if it reports one within a moment,
// else err.
func (e *eventReader) explain(err error) error {
	got := make(chan error, 1)
	go func() {
		_, rerr := e.expect(EventRestored)
		got <- rerr
	}()
	select {
	case rerr := <-got:
		var dockErr *errdefs.Error
		if errors.As(rerr, &dockErr) {
			return rerr
		}
	case <-time.After(2 * time.Second):
	}
	return err
}

// orErr explains a failed send with the dock's own error when it sent one
// (a dock that refuses an archive stops reading it).
func (e *eventReader) orErr(err error) error {
	if _, rerr := e.expect(EventRestored); rerr != nil {
		return rerr
	}
	return err
}

// reportProgress calls progress every 100 ms until stopped.
func reportProgress(progress func(string, int64), a, b *atomic.Int64) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				progress("", a.Load()+b.Load())
			}
		}
	}()
	return func() { close(done) }
}

// faultyWriter corrupts (flips a byte) or truncates (drops everything
// from) a stream at offset at: failpoints for the dock's verification.
type faultyWriter struct {
	w       io.Writer
	at, n   int64
	corrupt bool
}

func (f *faultyWriter) Write(p []byte) (int, error) {
	start := f.n
	f.n += int64(len(p))
	if f.n <= f.at || (!f.corrupt && start >= f.at) {
		if start >= f.at {
			return len(p), nil // truncated: swallowed
		}
		return f.w.Write(p)
	}
	q := append([]byte(nil), p...)
	if f.corrupt {
		if i := f.at - start; i >= 0 && i < int64(len(q)) {
			q[i] ^= 0x40
		}
	} else {
		q = q[:f.at-start]
	}
	if _, err := f.w.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}
