package dock

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/pki"
)

// The dock is tested here on its own, with receivers that stand in for
// podctl's (migrate.NativeReceiver, migrate.VesselReceiver): what is under
// test is the wire, real TLS and HTTP/2 included.

// startDock serves s on a loopback port with a fresh cluster's
// certificates and returns a client of it.
func startDock(t *testing.T, s *Server) *Client {
	t.Helper()
	dir := t.TempDir()
	if err := pki.Init(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dock", "source"} {
		if err := pki.Issue(dir, name, []string{"127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if s.TLS, err = pki.ServerConfig(dir, "dock"); err != nil {
		t.Fatal(err)
	}
	s.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
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
	cfg, err := pki.ClientConfig(dir, "source")
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(ln.Addr().String(), cfg)
	t.Cleanup(c.Close)
	return c
}

// echoPods receives a native pod by reading its whole archive, and pages
// by echoing through a helper what the source sends down the tunnel.
type echoPods struct {
	archive []byte
	pages   chan []byte
	fail    error
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
		})
	}()
	var err error
	if e.archive, err = io.ReadAll(t.Archive); err != nil {
		return err
	}
	if err := <-pages; err != nil {
		return err
	}
	return t.Restored("p-"+t.Name, "10.88.0.9", 42*time.Millisecond)
}

func TestSendPod(t *testing.T) {
	pods := &echoPods{pages: make(chan []byte, 1)}
	c := startDock(t, &Server{Pods: pods, Vessels: noVessels{}})
	ctx := context.Background()
	h, err := c.Hello(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Has(CapabilityCRIU) || !h.Has(CapabilityWasm) {
		t.Fatalf("capabilities %v, want criu (from the receiver) and wasm", h.Capabilities)
	}
	send, err := c.SendPod(ctx, SendPodOptions{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	io.WriteString(send.Archive, "manifest;")
	if err := send.Accepted(); err != nil {
		t.Fatalf("Accepted: %v", err)
	}
	// The source's CRIU writes its pages to one end of a socket pair.
	criu, done, err := send.RelayPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
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
func (noVessels) ReceiveVessel(context.Context, io.Reader, int64, string) (string, time.Duration, error) {
	return "", 0, errdefs.New(errdefs.Unsupported, "no vessels here")
}
func (noVessels) RemoveVessel(context.Context, string) error { return nil }

// keepVessels keeps the snapshots it receives.
type keepVessels struct {
	module  [32]byte
	got     []byte
	removed string
}

func (k *keepVessels) HasModule(h [32]byte) bool { return h == k.module }
func (k *keepVessels) ReceiveVessel(_ context.Context, body io.Reader, size int64, name string) (string, time.Duration, error) {
	var err error
	k.got, err = io.ReadAll(body)
	if int64(len(k.got)) != size {
		return "", 0, errors.New("size mismatch")
	}
	return name, 7 * time.Millisecond, err
}
func (k *keepVessels) RemoveVessel(_ context.Context, name string) error {
	k.removed = name
	return nil
}

func TestSendVessel(t *testing.T) {
	v := &keepVessels{module: [32]byte{1}}
	c := startDock(t, &Server{Vessels: v})
	ctx := context.Background()
	if !c.HasModule(ctx, [32]byte{1}) || c.HasModule(ctx, [32]byte{2}) {
		t.Fatal("HasModule does not answer what the receiver has")
	}
	snap := []byte("a portable snapshot")
	ev, err := c.SendVessel(ctx, bytes.NewReader(snap), int64(len(snap)), "v1")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Pod != "v1" || ev.Restore != 7*time.Millisecond || ev.Bytes != int64(len(snap)) || !bytes.Equal(v.got, snap) {
		t.Fatalf("event %+v, received %q", ev, v.got)
	}
	if v.removed != "" {
		t.Fatalf("the dock removed %s although the source heard of it", v.removed)
	}
}

func TestSendVesselRefused(t *testing.T) {
	c := startDock(t, &Server{Vessels: noVessels{}})
	_, err := c.SendVessel(context.Background(), strings.NewReader("x"), 1, "v1")
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
type stallPods struct{}

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
