package dock

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/pki"
)

// The dock is tested here on its own, with receivers that stand in for
// podctl's (migrate.NativeReceiver, migrate.VesselReceiver): what is under
// test is the wire, real TLS and HTTP/2 included.

// newCluster makes a CA in a fresh directory and issues a certificate
// valid for 127.0.0.1 to each of names.
func newCluster(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := pki.Init(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if err := pki.Issue(dir, name, []string{"127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// serveDock serves s on a loopback port with dir's certificate name and
// returns its address. A nil s.Log discards.
func serveDock(t *testing.T, s *Server, dir, name string) string {
	t.Helper()
	var err error
	if s.TLS, err = pki.ServerConfig(dir, name); err != nil {
		t.Fatal(err)
	}
	if s.Log == nil {
		s.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// dialDock returns a client of the dock at addr presenting dir's
// certificate name.
func dialDock(t *testing.T, dir, name, addr string) *Client {
	t.Helper()
	cfg, err := pki.ClientConfig(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(addr, cfg)
	t.Cleanup(c.Close)
	return c
}

// startDock serves s on a loopback port with a fresh cluster's
// certificates and returns a client of it.
func startDock(t *testing.T, s *Server) *Client {
	t.Helper()
	dir := newCluster(t, "dock", "source")
	return dialDock(t, dir, "source", serveDock(t, s, dir, "dock"))
}

// logBuffer collects a dock's log lines; the dock writes them from its
// handlers' goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logger returns a logger writing to b.
func (b *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// serialOf returns the serial number of dir's certificate name, as podctl
// logs it.
func serialOf(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, pki.CertFile(name)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM", name)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pki.Serial(c)
}

// wantRequestLogged fails unless the log has a request line for path
// naming the peer by its certificate's name and serial.
func wantRequestLogged(t *testing.T, log, path, peer, serial string) {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		line += " "
		if strings.Contains(line, "msg=request ") && strings.Contains(line, " path="+path+" ") &&
			strings.Contains(line, " peer="+peer+" ") && strings.Contains(line, " serial="+serial+" ") {
			return
		}
	}
	t.Errorf("no request line for %s by peer=%s serial=%s in the dock's log:\n%s", path, peer, serial, log)
}

// echoPods receives a native pod by reading its whole archive, and pages
// by echoing through a helper what the source sends down the tunnel.
type echoPods struct {
	archive []byte
	pages   chan []byte
	fail    error
	mu      sync.Mutex
	decided map[string]bool // session: commit
}

// Decide records the decision on a session it received.
func (e *echoPods) Decide(_ context.Context, session string, commit bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.decided == nil {
		return errdefs.New(errdefs.NotFound, "no pod was received here in session %s", session)
	}
	e.decided[session] = commit
	return nil
}

func (e *echoPods) Describe(_ context.Context, h *Hello) {
	h.Capabilities = append(h.Capabilities, CapabilityCRIU)
}

func (e *echoPods) ReceivePod(ctx context.Context, t *PodTransfer) error {
	if e.fail != nil {
		return e.fail
	}
	if err := t.Accepted("p-"+t.Name, "10.88.0.9"); err != nil {
		return err
	}
	pages := make(chan error, 1)
	go func() {
		pages <- t.TunnelPages(ctx, func(_ context.Context, conn *os.File) error {
			got, err := io.ReadAll(conn) // until the source's CRIU closes its end
			if err != nil {
				return err
			}
			_, err = conn.Write([]byte("ack"))
			e.pages <- got
			return err
		}, nil)
	}()
	var err error
	if e.archive, err = io.ReadAll(t.Archive); err != nil {
		return err
	}
	if err := <-pages; err != nil {
		return err
	}
	e.mu.Lock()
	e.decided = map[string]bool{}
	e.mu.Unlock()
	return t.Restored("p-"+t.Name, "10.88.0.9", 42*time.Millisecond)
}

// sendToPages starts sending a pod to c with o, as a source does until
// its CRIU dumps: the archive's start, the dock's acceptance, then the
// page tunnel, whose end of a socket pair the source's CRIU writes its
// pages to (criu) and whose outcome arrives on done.
func sendToPages(t *testing.T, c *Client, o SendPodOptions) (send *PodSend, criu *os.File, done <-chan error) {
	t.Helper()
	ctx := context.Background()
	send, err := c.SendPod(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(send.Close)
	io.WriteString(send.Archive, "manifest;")
	if err := send.Accepted(); err != nil {
		t.Fatalf("Accepted: %v", err)
	}
	criu, done, err = send.RelayPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return send, criu, done
}

// TestSendPod sends a pod through a real dock, archive and page tunnel,
// and checks that the dock logged every request with the identity of the
// peer that made it.
func TestSendPod(t *testing.T) {
	pods := &echoPods{pages: make(chan []byte, 1)}
	dir := newCluster(t, "dock", "source")
	var logs logBuffer
	c := dialDock(t, dir, "source", serveDock(t, &Server{Pods: pods, Vessels: noVessels{}, Log: logs.logger()}, dir, "dock"))
	ctx := context.Background()
	h, err := c.Hello(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Has(CapabilityCRIU) || !h.Has(CapabilityWasm) {
		t.Fatalf("capabilities %v, want criu (from the receiver) and wasm", h.Capabilities)
	}
	send, criu, done := sendToPages(t, c, SendPodOptions{Name: "web"})
	page := bytes.Repeat([]byte{0xa5}, 1<<20)
	criu.Write(page)
	shutdownWrite(criu)
	ack, err := io.ReadAll(criu)
	criu.Close()
	if err != nil || string(ack) != "ack" {
		t.Fatalf("the dock's helper answered %q, %v; want ack", ack, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("page tunnel: %v", err)
	}
	io.WriteString(send.Archive, "images")
	send.EndArchive()
	ev, err := send.Restored()
	if err != nil {
		t.Fatalf("Restored: %v", err)
	}
	if ev.Pod != "p-web" || ev.IP != "10.88.0.9" || ev.Restore != 42*time.Millisecond || ev.Bytes != int64(len("manifest;images")) {
		t.Fatalf("restored event %+v", ev)
	}
	if string(pods.archive) != "manifest;images" {
		t.Fatalf("the dock read the archive %q", pods.archive)
	}
	if got := <-pods.pages; !bytes.Equal(got, page) {
		t.Fatalf("the dock's helper got %d bytes of pages, want %d", len(got), len(page))
	}
	if a, p := send.Sent(); a != int64(len("manifest;images")) || p != int64(len(page)) {
		t.Fatalf("Sent() = %d, %d", a, p)
	}
	// The source's decision reaches the receiver, on a request of its
	// own; the receiver's errors come back with their kind.
	if err := c.Decide(ctx, send.Session(), true); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	pods.mu.Lock()
	commit, ok := pods.decided[send.Session()]
	pods.mu.Unlock()
	if !ok || !commit {
		t.Fatalf("the receiver got decisions %v, want a commit of session %s", pods.decided, send.Session())
	}
	if err := c.Decide(ctx, "not-a-session", true); errdefs.KindOf(err) != errdefs.InvalidArgument {
		t.Fatalf("Decide on a malformed session: %v, want InvalidArgument", err)
	}
	serial := serialOf(t, dir, "source")
	for _, path := range []string{pathHello, pathPods, pathPages, pathDecide} {
		wantRequestLogged(t, logs.String(), path, "source", serial)
	}
}

func TestSendPodRefused(t *testing.T) {
	c := startDock(t, &Server{Pods: &echoPods{fail: errdefs.New(errdefs.Conflict, "pod web exists")}, Vessels: noVessels{}})
	send, err := c.SendPod(context.Background(), SendPodOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	err = send.Accepted()
	if errdefs.KindOf(err) != errdefs.Conflict || !strings.Contains(err.Error(), "pod web exists") {
		t.Fatalf("got %v (kind %d), want the dock's Conflict", err, errdefs.KindOf(err))
	}
}

func TestNoPodReceiver(t *testing.T) {
	c := startDock(t, &Server{Vessels: noVessels{}})
	h, err := c.Hello(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h.Has(CapabilityCRIU) {
		t.Fatalf("a dock without a pod receiver says %v", h.Capabilities)
	}
	send, err := c.SendPod(context.Background(), SendPodOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	send.EndArchive()
	if err := send.Accepted(); err == nil {
		t.Fatal("a dock without a pod receiver accepted a pod")
	}
}

// noVessels has no module and takes no vessel.
type noVessels struct{}

func (noVessels) HasModule([32]byte) bool { return false }
func (noVessels) ReceiveVessel(context.Context, *VesselTransfer) (string, time.Duration, error) {
	return "", 0, errdefs.New(errdefs.Unsupported, "no vessels here")
}
func (noVessels) Decide(_ context.Context, session string, commit bool) error {
	if commit {
		return errdefs.New(errdefs.NotFound, "no vessel in session %s", session)
	}
	return nil
}

// keepVessels keeps the snapshots it receives, and the decisions it is
// told.
type keepVessels struct {
	module    [32]byte
	got       []byte
	session   string
	decisions []string
}

func (k *keepVessels) HasModule(h [32]byte) bool { return h == k.module }
func (k *keepVessels) ReceiveVessel(_ context.Context, t *VesselTransfer) (string, time.Duration, error) {
	var err error
	k.got, err = io.ReadAll(t.Body)
	if int64(len(k.got)) != t.Size {
		return "", 0, errors.New("size mismatch")
	}
	k.session = t.Session
	return t.Name, 7 * time.Millisecond, err
}
func (k *keepVessels) Decide(_ context.Context, session string, commit bool) error {
	if session != k.session {
		return errdefs.New(errdefs.NotFound, "no session %s", session)
	}
	k.decisions = append(k.decisions, map[bool]string{true: "commit", false: "abort"}[commit])
	return nil
}

// TestSendVessel sends a vessel's snapshot through a real dock and checks
// that the dock logged each request with the identity of the peer.
func TestSendVessel(t *testing.T) {
	v := &keepVessels{module: [32]byte{1}}
	dir := newCluster(t, "dock", "source")
	var logs logBuffer
	c := dialDock(t, dir, "source", serveDock(t, &Server{Vessels: v, Log: logs.logger()}, dir, "dock"))
	ctx := context.Background()
	if !c.HasModule(ctx, [32]byte{1}) || c.HasModule(ctx, [32]byte{2}) {
		t.Fatal("HasModule does not answer what the receiver has")
	}
	snap := []byte("a portable snapshot")
	session := NewSession()
	ev, err := c.SendVessel(ctx, bytes.NewReader(snap), int64(len(snap)), "v1", session)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Pod != "v1" || ev.Restore != 7*time.Millisecond || ev.Bytes != int64(len(snap)) || !bytes.Equal(v.got, snap) || v.session != session {
		t.Fatalf("event %+v, received %q in session %q", ev, v.got, v.session)
	}
	if err := c.Decide(ctx, session, true); err != nil {
		t.Fatal(err)
	}
	if err := c.Decide(ctx, NewSession(), true); errdefs.KindOf(err) != errdefs.NotFound {
		t.Fatalf("commit of an unknown session: %v, want NotFound", err)
	}
	if strings.Join(v.decisions, " ") != "commit" {
		t.Fatalf("decisions %q, want the one commit", v.decisions)
	}
	serial := serialOf(t, dir, "source")
	for _, path := range []string{pathModules + hex.EncodeToString(v.module[:]), pathVessels, pathDecide} {
		wantRequestLogged(t, logs.String(), path, "source", serial)
	}
	// The dock logs the restore once the event is out: the source may
	// read it first.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "msg=\"vessel restored, held for its source's decision\" peer=source serial="+serial+" ") {
		if time.Now().After(deadline) {
			t.Fatalf("the vessel's restore is not logged with its peer:\n%s", logs.String())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSendVesselRefused(t *testing.T) {
	c := startDock(t, &Server{Vessels: noVessels{}})
	_, err := c.SendVessel(context.Background(), strings.NewReader("x"), 1, "v1", NewSession())
	if errdefs.KindOf(err) != errdefs.Unsupported || !strings.Contains(err.Error(), "no vessels here") {
		t.Fatalf("got %v, want the dock's Unsupported", err)
	}
}

// TestOtherCA checks that a client of another cluster is refused at the
// handshake, with a message that says so.
func TestOtherCA(t *testing.T) {
	c := startDock(t, &Server{Vessels: noVessels{}})
	other := t.TempDir()
	if err := pki.Init(other); err != nil {
		t.Fatal(err)
	}
	if err := pki.Issue(other, "intruder", nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ClientConfig(other, "intruder")
	if err != nil {
		t.Fatal(err)
	}
	intruder := NewClient(c.Addr(), cfg)
	defer intruder.Close()
	if _, err := intruder.Hello(context.Background()); err == nil || !strings.Contains(err.Error(), "mutual TLS") {
		t.Fatalf("a client of another CA got %v", err)
	}
}

// stallPods accepts a pod and never restores it.
type stallPods struct{ noDecisions }

func (stallPods) Describe(context.Context, *Hello) {}
func (stallPods) ReceivePod(ctx context.Context, t *PodTransfer) error {
	if err := t.Accepted("p", "10.88.0.9"); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestSendPodInterrupted checks that a source that gives up (Ctrl-C)
// says so, rather than blaming the dock.
func TestSendPodInterrupted(t *testing.T) {
	c := startDock(t, &Server{Pods: stallPods{}, Vessels: noVessels{}})
	ctx, cancel := context.WithCancel(context.Background())
	send, err := c.SendPod(ctx, SendPodOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	if err := send.Accepted(); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = send.Restored()
	if err == nil || !strings.Contains(err.Error(), "interrupted while waiting for dock") || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// TestSilentPeers checks the limits before authentication: connections
// that never start a TLS handshake are dropped after the handshake
// timeout, and while they fill every slot a real client waits for one
// rather than failing.
func TestSilentPeers(t *testing.T) {
	const timeout = 300 * time.Millisecond
	c := startDock(t, &Server{Vessels: noVessels{}, HandshakeTimeout: timeout, MaxConns: 4})
	var silent []net.Conn
	for range 4 {
		conn, err := net.Dial("tcp", c.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		silent = append(silent, conn)
	}
	start := time.Now()
	if _, err := c.Hello(context.Background()); err != nil {
		t.Fatalf("a real client behind 4 silent peers: %v", err)
	}
	waited := time.Since(start)
	t.Logf("a real client got through after %v", waited.Round(time.Millisecond))
	if waited < timeout/2 {
		t.Fatalf("the dock took a fifth connection at once (MaxConns 4)")
	}
	for i, conn := range silent {
		conn.SetReadDeadline(time.Now().Add(10 * timeout))
		if _, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("silent peer %d: %v, want the dock to have closed the connection", i, err)
		}
	}
}

// TestServeRequiresClientCerts checks that a dock refuses to serve with a
// TLS configuration that would let a peer in without a certificate: its
// log could not say who did what.
func TestServeRequiresClientCerts(t *testing.T) {
	dir := newCluster(t, "dock")
	cfg, err := pki.ServerConfig(dir, "dock")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &Server{Vessels: noVessels{}, TLS: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := s.Serve(context.Background(), ln); err == nil || !strings.Contains(err.Error(), "client certificates") {
		t.Fatalf("Serve with optional client certificates = %v", err)
	}
}

// TestRevokedClient checks that a running dock refuses, from its next
// handshake on, a client whose certificate has been revoked since it
// started, logs who it refused, and takes the node again once its
// certificate is issued anew.
func TestRevokedClient(t *testing.T) {
	dir := newCluster(t, "dock", "source")
	var logs logBuffer
	addr := serveDock(t, &Server{Vessels: noVessels{}, Log: logs.logger()}, dir, "dock")
	cfg, err := pki.ClientConfig(dir, "source")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before := NewClient(addr, cfg)
	defer before.Close()
	if _, err := before.Hello(ctx); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	serial := serialOf(t, dir, "source")
	if err := pki.Revoke(dir, "source"); err != nil {
		t.Fatal(err)
	}
	// A new connection, with the configuration made before.
	after := NewClient(addr, cfg)
	defer after.Close()
	_, err = after.Hello(ctx)
	if !errdefs.Is(err, errdefs.Unsupported) || !strings.Contains(err.Error(), "refused this node's certificate") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("a revoked client got %v (kind %d), want one Unsupported line saying the dock refused its certificate", err, errdefs.KindOf(err))
	}
	t.Logf("refused: %v", err)
	want := `msg="handshake refused" peer=source serial=` + serial + ` remote=127.0.0.1:`
	if log := logs.String(); !strings.Contains(log, want) || !strings.Contains(log, `err="certificate of node source (serial `+serial+`) is revoked"`) {
		t.Errorf("the dock's log does not say it refused the revoked certificate (%s):\n%s", want, log)
	}
	// The client's own configuration refuses it too, from now on.
	if _, err := pki.ClientConfig(dir, "source"); !errdefs.Is(err, errdefs.Unsupported) || !strings.Contains(err.Error(), "is revoked") {
		t.Errorf("ClientConfig of a revoked certificate = %v", err)
	}
	// Issued anew, the node has a certificate of another serial.
	if err := pki.Issue(dir, "source", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := dialDock(t, dir, "source", addr).Hello(ctx); err != nil {
		t.Fatalf("a node issued anew after its revocation: %v", err)
	}
}

// TestRevokedDock checks that a client refuses a dock whose certificate
// is revoked, at the handshake, with one line that says so.
func TestRevokedDock(t *testing.T) {
	dir := newCluster(t, "dock", "source")
	addr := serveDock(t, &Server{Vessels: noVessels{}}, dir, "dock")
	cfg, err := pki.ClientConfig(dir, "source")
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.Revoke(dir, "dock"); err != nil {
		t.Fatal(err)
	}
	c := NewClient(addr, cfg)
	defer c.Close()
	_, err = c.Hello(context.Background())
	want := "dock " + addr + ": certificate of node dock (serial " + serialOf(t, dir, "dock") + ") is revoked"
	if !errdefs.Is(err, errdefs.Unsupported) || err == nil || err.Error() != want {
		t.Fatalf("a client of a revoked dock got %v (kind %d), want Unsupported %q", err, errdefs.KindOf(err), want)
	}
	t.Logf("refused: %v", err)
	// The dock cannot start again with it.
	if _, err := pki.ServerConfig(dir, "dock"); !errdefs.Is(err, errdefs.Unsupported) || !strings.Contains(err.Error(), "is revoked") {
		t.Errorf("ServerConfig of a revoked certificate = %v", err)
	}
}

// TestDockHost checks that a client takes a dock only if its certificate
// is valid for the host the client was told: one node cannot pose as
// another's dock with its own CA-signed certificate. A certificate for
// every host of a cluster, as the end-to-end tests issue, is valid.
func TestDockHost(t *testing.T) {
	dir := newCluster(t, "source")
	if err := pki.Issue(dir, "impostor", []string{"192.0.2.11", "elsewhere.example"}); err != nil {
		t.Fatal(err)
	}
	if err := pki.Issue(dir, "cluster", []string{"192.0.2.10", "127.0.0.1", "192.0.2.12"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	addr := serveDock(t, &Server{Vessels: noVessels{}}, dir, "impostor")
	_, err := dialDock(t, dir, "source", addr).Hello(ctx)
	want := "dock " + addr + ": dock certificate is not valid for 127.0.0.1: node impostor's certificate is for 192.0.2.11, elsewhere.example: name the dock so, or issue it with --host 127.0.0.1"
	if !errdefs.Is(err, errdefs.Unsupported) || err == nil || err.Error() != want {
		t.Fatalf("a dock with a certificate for another host: %v (kind %d), want Unsupported %q", err, errdefs.KindOf(err), want)
	}
	if _, err := dialDock(t, dir, "source", serveDock(t, &Server{Vessels: noVessels{}}, dir, "cluster")).Hello(ctx); err != nil {
		t.Fatalf("a dock with a certificate for the cluster's hosts: %v", err)
	}
}

// goneVessels restores every vessel it is sent only once the source has
// given up on it (the request's context is done), as a restore that ends
// just after the source died would, and records the sessions it is told
// to abort.
type goneVessels struct {
	restoring chan struct{}
	aborted   chan string
}

func (g *goneVessels) HasModule([32]byte) bool { return false }
func (g *goneVessels) ReceiveVessel(ctx context.Context, t *VesselTransfer) (string, time.Duration, error) {
	io.Copy(io.Discard, t.Body)
	close(g.restoring)
	<-ctx.Done()
	return t.Name, time.Millisecond, nil
}
func (g *goneVessels) Decide(_ context.Context, session string, commit bool) error {
	if !commit {
		g.aborted <- session
	}
	return nil
}

// TestVesselRestoredToAGoneSource checks that a dock removes a vessel it
// restored for a source that has gone (which resumes its own): the
// "restored" event is flushed, so that writing it fails, instead of
// sitting in the response's buffer until the handler returns.
func TestVesselRestoredToAGoneSource(t *testing.T) {
	g := &goneVessels{restoring: make(chan struct{}), aborted: make(chan string, 1)}
	c := startDock(t, &Server{Vessels: g})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-g.restoring
		cancel() // the source gives up, as a Ctrl-C or its death would
	}()
	session := NewSession()
	if _, err := c.SendVessel(ctx, strings.NewReader("snapshot"), int64(len("snapshot")), "v", session); err == nil {
		t.Fatal("a source that gave up learned of the restore")
	}
	select {
	case got := <-g.aborted:
		if got != session {
			t.Fatalf("aborted session %q, want %q", got, session)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the dock kept a vessel whose source never learned it runs there")
	}
}

// noDecisions is a receiver that never prepares a pod to decide on.
type noDecisions struct{}

func (noDecisions) Decide(context.Context, string, bool) error { return nil }
