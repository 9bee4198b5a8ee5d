package dock

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/pki"
)

// Client talks to one dock.
type Client struct {
	addr string
	tls  *tls.Config
	http *http.Client

	mu    sync.Mutex
	conns []net.Conn // for failpoints that cut the connection
}

// NewClient returns a client for the dock at addr (host:port), presenting
// the certificate in tlsConfig (pki.ClientConfig). Unless tlsConfig names
// a ServerName, the dock's certificate must be valid for addr's host.
func NewClient(addr string, tlsConfig *tls.Config) *Client {
	c := &Client{addr: addr}
	cfg := tlsConfig.Clone()
	cfg.NextProtos = []string{"h2"}
	if cfg.ServerName == "" {
		// net/http would do the same; said here, since it is what
		// keeps a node from posing as another's dock.
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg.ServerName = host
	}
	c.tls = cfg
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

// Cut closes the connections to the dock abruptly, as a failed link
// would: fault-injection tests of the migration use it.
func (c *Client) Cut() {
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

// Addr is the dock's address, HOST:PORT.
func (c *Client) Addr() string { return c.addr }

// ISA asks the dock for its instruction set architecture (GOARCH).
func (c *Client) ISA(ctx context.Context) (string, error) {
	h, err := c.Hello(ctx)
	if err != nil {
		return "", err
	}
	return h.ISA, nil
}

// Hello asks the dock what it is.
func (c *Client) Hello(ctx context.Context) (*Hello, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(pathHello, nil), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.connectError(ctx, err)
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

// connectError explains the failure of a request that found no
// connection to the dock. Every such failure is an errdefs.Unsupported
// error, as is every failure to authenticate: this dock cannot be used
// with this node's certificates.
func (c *Client) connectError(ctx context.Context, err error) error {
	err = unwrapURLError(err)
	if !isTLSError(err) && !isDialError(err) {
		// The connection was made and then lost without a word (the
		// HTTP/2 transport does not keep why): ask again.
		if perr := c.probe(ctx); perr != nil {
			err = perr
		}
	}
	var revoked *pki.RevokedError
	if errors.As(err, &revoked) {
		// The dock's certificate, in our revoked.txt.
		return errdefs.New(errdefs.Unsupported, "dock %s: %v", c.addr, revoked)
	}
	var hostErr x509.HostnameError
	if errors.As(err, &hostErr) {
		return errdefs.New(errdefs.Unsupported, "dock %s: dock certificate is not valid for %s: %s",
			c.addr, hostErr.Host, certHosts(hostErr.Certificate, hostErr.Host))
	}
	msg := err.Error()
	if strings.Contains(msg, "remote error: tls: bad certificate") {
		// TLS 1.3 tells a client that its certificate was refused only
		// after its own side of the handshake, and not why: the dock
		// logs why ("handshake refused").
		return errdefs.New(errdefs.Unsupported, "dock %s refused this node's certificate (revoked, or of another CA?): %v", c.addr, err)
	}
	if isTLSError(err) {
		return errdefs.New(errdefs.Unsupported, "dock %s: mutual TLS authentication failed (certificates of another CA?): %v", c.addr, err)
	}
	return errdefs.New(errdefs.Unsupported, "dock %s is unreachable: %v", c.addr, err)
}

// isTLSError reports whether err is a failure of TLS: a handshake, a
// certificate, an alert from the peer.
func isTLSError(err error) bool {
	var verr *tls.CertificateVerificationError
	msg := err.Error()
	return errors.As(err, &verr) || strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: ")
}

// isDialError reports whether err is a failure to open a TCP connection.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// probe connects to the dock and reads what it sends first, to explain a
// connection lost before its first request: it returns the TLS error that
// the dock's answer is, if it is one, and nil otherwise. In TLS 1.3 a
// dock refuses a client's certificate after the client's side of the
// handshake has ended, with an alert the client reads with the dock's
// first bytes. When the HTTP/2 transport reads it before its first
// request has claimed the connection, it reports only "client conn could
// not be established"; and a dock that closes a connection with unread
// data (the transport's preface) resets it, which may destroy the alert.
// The probe writes nothing after its handshake and reads the alert
// itself. (The dock logs the refusal of both connections.)
func (c *Client) probe(ctx context.Context) error {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: c.tls}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		if isTLSError(err) {
			return err
		}
		return nil
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetReadDeadline(deadline)
	if _, err := conn.Read(make([]byte, 1)); err != nil && isTLSError(err) {
		return err
	}
	return nil
}

// certHosts says whom a dock's certificate is for, and what to do to
// reach it as host.
func certHosts(cert *x509.Certificate, host string) string {
	var names []string
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	names = append(names, cert.DNSNames...)
	fix := "issue it with --host " + host
	if len(names) == 0 {
		return fmt.Sprintf("node %s's certificate names no host: %s", cert.Subject.CommonName, fix)
	}
	return fmt.Sprintf("node %s's certificate is for %s: name the dock so, or %s", cert.Subject.CommonName, strings.Join(names, ", "), fix)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// NewSession returns a new migration session: 128 random bits in hex, by
// which the source names the migration when it decides (Client.Decide).
func NewSession() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// eventReader reads a receive response's events; ctx is the request's.
type eventReader struct {
	ctx  context.Context
	dec  *json.Decoder
	dock string
	err  error
}

// expect reads the next event and fails unless it has type typ.
func (e *eventReader) expect(typ string) (*Event, error) {
	var ev Event
	if err := e.dec.Decode(&ev); err != nil {
		if cerr := e.ctx.Err(); cerr != nil {
			// Our side gave up (Ctrl-C, say): the dock did not go away.
			e.err = errdefs.New(errdefs.Interrupted, "interrupted while waiting for dock %s: %w", e.dock, cerr)
			return nil, e.err
		}
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
