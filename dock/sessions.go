package dock

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/podctl/podctl/internal/errdefs"
)

// A migration's source keeps a hold on the pod it sent: it may read the
// pod's state and output at the dock and remove it, by the session of the
// migration that brought it. The session is 128 random bits that only the
// source and the dock know (it travels inside TLS), so a peer reaches the
// pods it migrated here and no other: not the dock's own, not another
// peer's. `podctl compare --to` reads its workloads' checksums so, and a
// user reaches a pod moved away without logging in to the dock's host.

// SessionPods finds the pod that a migration session brought to a dock.
// podctl's is migrate.Destination's.
type SessionPods interface {
	// InspectSession returns what `podctl inspect` shows of the pod.
	InspectSession(ctx context.Context, session string) (any, error)
	// LogsSession writes the pod's output (`podctl logs`) to w.
	LogsSession(ctx context.Context, session string, w io.Writer) error
	// RemoveSession removes the pod, ending it first if it runs.
	RemoveSession(ctx context.Context, session string) error
}

// Every method fails with errdefs.NotFound for a session that brought no
// pod here, or whose pod is gone.

const pathSessions = "/v1/sessions/"

// IsSession reports whether s has the form of a migration session.
func IsSession(s string) bool { return sessionRE.MatchString(s) }

// sessionPod serves the requests on the pod of the session in its path:
// GET its state, GET .../logs its output, DELETE it.
func (s *Server) sessionPod(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("session")
	log := s.requestLog(r).With("session", id)
	if !sessionRE.MatchString(id) {
		http.Error(w, "bad session id", http.StatusBadRequest)
		return
	}
	var err error
	switch {
	case r.Method == http.MethodGet && r.PathValue("what") == "":
		var v any
		if v, err = s.Sessions.InspectSession(r.Context(), id); err == nil {
			w.Header().Set("Content-Type", "application/json")
			err = json.NewEncoder(w).Encode(v)
		}
	case r.Method == http.MethodGet && r.PathValue("what") == "logs":
		// The output goes out as it is read. Nothing is written before
		// the pod is found, so that a pod not found still has its status
		// (http.Error sets its own type).
		w.Header().Set("Content-Type", "application/octet-stream")
		err = s.Sessions.LogsSession(r.Context(), id, w)
	case r.Method == http.MethodDelete && r.PathValue("what") == "":
		if err = s.Sessions.RemoveSession(r.Context(), id); err == nil {
			log.Info("pod removed by its source")
			w.WriteHeader(http.StatusNoContent)
		}
	default:
		http.Error(w, "no such request", http.StatusNotFound)
		return
	}
	if err != nil {
		code := http.StatusInternalServerError
		if errdefs.KindOf(err) == errdefs.NotFound {
			code = http.StatusNotFound
		}
		log.Warn("session pod request failed", "err", err)
		http.Error(w, firstLine(err.Error()), code)
	}
}

// firstLine is s up to its first line break.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// InspectSession returns what the dock shows of the pod that session
// brought there (podctl inspect's JSON).
func (c *Client) InspectSession(ctx context.Context, session string) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.sessionRequest(ctx, http.MethodGet, session, "", func(body io.Reader) error {
		return json.NewDecoder(io.LimitReader(body, 1<<20)).Decode(&out)
	})
	return out, err
}

// LogsSession copies to w the output of the pod that session brought to
// the dock.
func (c *Client) LogsSession(ctx context.Context, session string, w io.Writer) error {
	return c.sessionRequest(ctx, http.MethodGet, session, "/logs", func(body io.Reader) error {
		_, err := io.Copy(w, body)
		return err
	})
}

// RemoveSession removes the pod that session brought to the dock.
func (c *Client) RemoveSession(ctx context.Context, session string) error {
	return c.sessionRequest(ctx, http.MethodDelete, session, "", nil)
}

// sessionRequest makes one request on the pod of session and hands the
// body of a successful answer to read. A pod the dock does not know is an
// errdefs.NotFound.
func (c *Client) sessionRequest(ctx context.Context, method, session, suffix string, read func(io.Reader) error) error {
	if !IsSession(session) {
		return errdefs.New(errdefs.InvalidArgument, "invalid session %q: want the hex session podctl migrate printed", session)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(pathSessions+session+suffix, nil), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.connectError(ctx, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return errdefs.New(errdefs.NotFound, "dock %s: no pod of session %s: %s", c.addr, session, readReason(resp.Body))
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("dock %s: session %s: %s: %s", c.addr, session, resp.Status, readReason(resp.Body))
	case read != nil:
		if err := read(resp.Body); err != nil {
			return fmt.Errorf("dock %s: session %s: %w", c.addr, session, unwrapURLError(err))
		}
	}
	return nil
}

// readReason reads the one line of an error answer.
func readReason(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 4096))
	return strings.TrimSpace(string(b))
}
