//go:build linux && cgo

package dock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// socketPair returns a connected pair of stream sockets: one end for
// podctl, one to hand to a CRIU helper process (--ps-socket).
func socketPair() (ours, theirs *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "ps-ours"), os.NewFile(uintptr(fds[1]), "ps-theirs"), nil
}

// halfCloser is a connection whose sending side can be shut down alone.
type halfCloser interface {
	CloseWrite() error
}

// relay copies between a local CRIU connection and the two directions of a
// tunnel until both directions are done: what CRIU writes goes to w, what
// arrives on r goes to CRIU. When CRIU stops writing, w is closed (if it
// can be); when r ends, CRIU's connection is shut down for writing.
func relay(local io.ReadWriteCloser, r io.Reader, w io.Writer) error {
	up := make(chan error, 1)
	go func() {
		_, err := io.Copy(w, local)
		if c, ok := w.(io.Closer); ok {
			c.Close()
		}
		up <- err
	}()
	_, down := io.Copy(local, r)
	shutdownWrite(local)
	errUp := <-up
	if errors.Is(down, net.ErrClosed) || errors.Is(down, os.ErrClosed) {
		down = nil
	}
	if errors.Is(errUp, net.ErrClosed) || errors.Is(errUp, os.ErrClosed) {
		errUp = nil
	}
	return errors.Join(down, errUp)
}

func shutdownWrite(c io.Closer) {
	switch c := c.(type) {
	case halfCloser:
		c.CloseWrite()
	case *os.File:
		if rc, err := c.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_WR) })
		}
	}
}

// pageTunnelClient is the source's end of a migration's page tunnel.
type pageTunnelClient struct {
	c       *Client
	session string
	counter *atomic.Int64
}

// open starts the tunnel request. What is written to the returned writer
// reaches the dock's CRIU helper; what it sends back is read from the
// returned reader.
func (t *pageTunnelClient) open(ctx context.Context) (io.ReadCloser, io.WriteCloser, error) {
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.c.url(pathPages, url.Values{"session": {t.session}}), pr)
	if err != nil {
		return nil, nil, err
	}
	resp, err := t.c.http.Do(req)
	if err != nil {
		return nil, nil, unwrapURLError(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, nil, fmt.Errorf("page tunnel: %s", resp.Status)
	}
	return resp.Body, countWriteCloser{pw, t.counter}, nil
}

// relayLocal relays between a local CRIU connection and a new tunnel.
func (t *pageTunnelClient) relayLocal(ctx context.Context, conn io.ReadWriteCloser) error {
	defer conn.Close()
	body, w, err := t.open(ctx)
	if err != nil {
		return err
	}
	defer body.Close()
	return relay(conn, body, w)
}

// forwardDial connects to a lazily dumping CRIU's page server at ps and
// relays it through a tunnel.
func (t *pageTunnelClient) forwardDial(ctx context.Context, ps netip.AddrPort) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp4", ps.String())
	if err != nil {
		return err
	}
	return t.relayLocal(ctx, conn)
}

type countWriteCloser struct {
	io.WriteCloser
	n *atomic.Int64
}

func (c countWriteCloser) Write(p []byte) (int, error) {
	n, err := c.WriteCloser.Write(p)
	c.n.Add(int64(n))
	return n, err
}
