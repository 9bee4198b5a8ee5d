package dock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/podctl/podctl/internal/budget"
	"github.com/podctl/podctl/internal/failpoint"
)

// A page tunnel carries the bytes between the source's CRIU and the
// destination's page helper (a page server for stop-and-copy, a
// lazy-pages daemon for post-copy) as the body of one HTTP/2 request and
// of its response, so that memory travels on the migration's
// authenticated connection. Neither CRIU knows: each talks to a socket
// of ours.

// halfCloser is a connection whose sending side can be shut down alone.
type halfCloser interface {
	CloseWrite() error
}

// relay copies between a local CRIU connection and the two directions of a
// tunnel until both directions are done: what CRIU writes goes to w, what
// arrives on r goes to CRIU. When CRIU stops writing, w is closed (if it
// can be: with the copy's error, if it can carry one); when r ends,
// CRIU's connection is shut down for writing.
func relay(local io.ReadWriteCloser, r io.Reader, w io.Writer) error {
	return relayGuarded(local, r, w, nil)
}

// relayGuarded is relay that, if r fails (the tunnel broke: the stream
// did not end as its source ended it), calls broken before it lets CRIU
// see the end.
func relayGuarded(local io.ReadWriteCloser, r io.Reader, w io.Writer, broken func(error)) error {
	up := make(chan error, 1)
	go func() {
		_, err := io.Copy(w, local)
		if c, ok := w.(interface{ CloseWithError(error) error }); ok {
			c.CloseWithError(err) // a failed copy must not look complete
		} else if c, ok := w.(io.Closer); ok {
			c.Close()
		}
		up <- err
	}()
	_, down := io.Copy(local, r)
	if down != nil && broken != nil {
		broken(down)
	}
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

// pageTunnelClient is the source's end of a migration's page tunnel.
type pageTunnelClient struct {
	c       *Client
	session string
	counter *atomic.Int64
}

// open starts the tunnel request. What is written to the returned writer
// reaches the dock's CRIU helper, in checked batches (see batchWriter);
// what it sends back is read from the returned reader.
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
	pages := &batchWriter{w: pw, sent: t.counter, corrupt: failpoint.Armed("migrate:corrupt-pages")}
	return resp.Body, pages, nil
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

type countWriteCloser struct {
	io.WriteCloser
	n *atomic.Int64
}

func (c countWriteCloser) Write(p []byte) (int, error) {
	n, err := c.WriteCloser.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// reservingReader reserves from a lease every byte read through it,
// before handing it on, and fails once the lease refuses.
type reservingReader struct {
	r     io.Reader
	lease *budget.Lease
}

func (r reservingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		if rerr := r.lease.Reserve(int64(n)); rerr != nil {
			return 0, fmt.Errorf("page tunnel: %w", rerr)
		}
	}
	return n, err
}

// tunnelTo runs a page helper on one end of a socket pair and connects
// the other end to the session's page tunnel once that arrives. The
// helper starts at once, so its start-up is not on the migration's
// critical path. If disk is not nil, the bytes from the source are
// reserved there before they reach the helper. If the tunnel breaks,
// broken (if set) is called while the helper still waits for the rest.
func tunnelTo(ctx context.Context, ss *session, helper func(context.Context, *os.File) error, disk *budget.Lease, broken func()) error {
	ours, theirs, err := socketPair()
	if err != nil {
		return err
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	helperDone := make(chan error, 1)
	go func() {
		err := helper(hctx, theirs)
		theirs.Close()
		helperDone <- err
	}()
	var t pageTunnel
	select {
	case t = <-ss.tunnel:
	case err := <-helperDone:
		ours.Close()
		return fmt.Errorf("page helper ended before the source connected: %w", err)
	case <-ctx.Done():
		cancel()
		<-helperDone
		ours.Close()
		return ctx.Err()
	case <-time.After(2 * time.Minute):
		cancel()
		<-helperDone
		ours.Close()
		return errors.New("the source never opened the page tunnel")
	}
	from := io.Reader(&batchReader{r: t.r})
	if disk != nil {
		from = reservingReader{r: from, lease: disk}
	}
	relayDone := make(chan error, 1)
	go func() {
		relayDone <- relayGuarded(ours, from, t.w, func(error) {
			if broken != nil {
				broken()
			}
		})
	}()
	err = <-helperDone
	// The last words of a helper that succeeded (the page server's final
	// acknowledgement) may still be in the socket: let the relay drain
	// them, and the source close its side, before ending the tunnel
	// request. A helper that failed, or was stopped with the receive, has
	// none: the tunnel ends at once, or the source's CRIU, waiting for an
	// answer that never comes, would wait out the drain (the stalled
	// dumps of TestMigrateFaultsLeaveSourceRunning/truncated-archive).
	if err == nil {
		select {
		case relayErr := <-relayDone:
			ours.Close()
			close(t.done)
			return refusedOr(disk, damagedOr(relayErr, err))
		case <-time.After(10 * time.Second):
		}
	}
	ours.Close()
	close(t.done)
	return refusedOr(disk, damagedOr(<-relayDone, err))
}

// damagedOr returns the relay's error if the page stream arrived damaged
// (the helper then saw its input end early, and says less), else err.
func damagedOr(relayErr, err error) error {
	if errors.Is(relayErr, ErrPageStream) {
		return fmt.Errorf("page tunnel: %w", relayErr)
	}
	return err
}

// refusedOr returns the refusal of the tunnel's disk lease, if it
// refused a reservation (the helper then saw its input end early, which
// it may or may not call an error), else err.
func refusedOr(disk *budget.Lease, err error) error {
	if refused := disk.Err(); refused != nil {
		return fmt.Errorf("page tunnel: %w", refused)
	}
	return err
}
