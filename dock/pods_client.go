package dock

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
)

// SendPodOptions are the source's options of a native pod's migration,
// as the dock's PodTransfer gets them.
type SendPodOptions struct {
	// Name renames the pod at the dock (empty: keep its name).
	Name string
	// Force skips the dock's CPU feature check.
	Force bool
	// Lazy asks for post-copy: the pod resumes at the dock before its
	// memory has arrived.
	Lazy bool
}

// PodSend is the source's end of one native pod's migration: the archive
// request, whose body is written while the pod is dumped, the dock's
// events in its response, and the page tunnel.
type PodSend struct {
	// Archive is the request's body: the pod's archive goes here.
	Archive io.Writer

	ctx                     context.Context
	c                       *Client
	session                 string
	body                    *io.PipeWriter
	archiveBytes, pageBytes atomic.Int64
	response                chan podResponse
	resp                    *http.Response
	events                  *eventReader
}

type podResponse struct {
	resp *http.Response
	err  error
}

// SendPod starts the archive request of a native pod's migration. The
// request lasts as long as ctx; Close ends it.
func (c *Client) SendPod(ctx context.Context, o SendPodOptions) (*PodSend, error) {
	s := &PodSend{ctx: ctx, c: c, session: NewSession(), response: make(chan podResponse, 1)}
	q := url.Values{"session": {s.session}}
	if o.Lazy {
		q.Set("lazy", "1")
	}
	if o.Name != "" {
		q.Set("name", o.Name)
	}
	if o.Force {
		q.Set("force", "1")
	}
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(pathPods, q), pr)
	if err != nil {
		return nil, err
	}
	s.body = pw
	s.Archive = countWriteCloser{pw, &s.archiveBytes}
	go func() {
		resp, err := c.http.Do(req)
		s.response <- podResponse{resp, err}
	}()
	return s, nil
}

// Accepted waits for the dock's answer to the archive's manifest (written
// and flushed first): nil once it has reserved the pod's name, address
// and ports, so that the pod may be frozen.
func (s *PodSend) Accepted() error {
	r := <-s.response
	if r.err != nil {
		return fmt.Errorf("dock %s: %w", s.c.addr, unwrapURLError(r.err))
	}
	s.resp = r.resp
	// HTTP/2 does not end a response's body when the request's context
	// ends while its own body is still open: close it then, so that a
	// Ctrl-C never leaves the source waiting for an event.
	context.AfterFunc(s.ctx, func() { r.resp.Body.Close() })
	s.events = &eventReader{ctx: s.ctx, dec: json.NewDecoder(bufio.NewReader(r.resp.Body)), dock: s.c.addr}
	_, err := s.events.expect(EventAccepted)
	return err
}

// Restored waits for the dock to report the pod running there.
func (s *PodSend) Restored() (*Event, error) { return s.events.expect(EventRestored) }

// Completed waits for the dock to report that a post-copy is complete.
func (s *PodSend) Completed() error {
	_, err := s.events.expect(EventComplete)
	return err
}

// Explain returns the dock's error if it reports one within a moment,
// else err: the dock's own account (a full disk, say) beats CRIU's "the
// page server doesn't answer".
func (s *PodSend) Explain(err error) error { return s.events.explain(err) }

// OrErr explains a failed send with the dock's own error when it sent one
// (a dock that refuses an archive stops reading it).
func (s *PodSend) OrErr(err error) error { return s.events.orErr(err) }

// EndArchive ends the archive request's body.
func (s *PodSend) EndArchive() { s.body.Close() }

// Sent is how many bytes went out so far: in the archive request and
// through the page tunnel.
func (s *PodSend) Sent() (archive, pages int64) { return s.archiveBytes.Load(), s.pageBytes.Load() }

// RelayPages opens the page tunnel for a dumping CRIU: one that sends
// its pages to the dock's page server (stop-and-copy), or serves them to
// the dock's lazy-pages daemon (post-copy). It returns the socket to give
// CRIU and a channel that reports once the tunnel is done.
func (s *PodSend) RelayPages(ctx context.Context) (*os.File, <-chan error, error) {
	ours, theirs, err := socketPair()
	if err != nil {
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- s.tunnel().relayLocal(ctx, ours) }()
	return theirs, done, nil
}

func (s *PodSend) tunnel() *pageTunnelClient {
	return &pageTunnelClient{c: s.c, session: s.session, counter: &s.pageBytes}
}

// Close abandons the archive request if it has not ended, and releases
// the response.
func (s *PodSend) Close() {
	s.body.CloseWithError(errors.New("migration aborted"))
	if s.resp != nil {
		s.resp.Body.Close()
	}
}

// Decide tells the dock the source's decision on the pod it migrated
// there in session (PodSend.Session): run it (commit) or remove it. It is
// safe to repeat, on a new connection too. Committing a session the dock
// never prepared fails with errdefs.NotFound.
func (c *Client) Decide(ctx context.Context, session string, commit bool) error {
	q := url.Values{"session": {session}}
	if commit {
		q.Set("commit", "1")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(pathDecide, q), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("dock %s: %w", c.addr, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("dock %s: decide: %s", c.addr, resp.Status)
	}
	events := &eventReader{ctx: ctx, dec: json.NewDecoder(resp.Body), dock: c.addr}
	_, err = events.expect(EventDecided)
	return err
}

// Session is the migration's session, which names it in Decide.
func (s *PodSend) Session() string { return s.session }
