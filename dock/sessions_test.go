package dock

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/podctl/podctl/internal/errdefs"
)

// onePod is a dock's SessionPods holding one pod, brought by session.
type onePod struct {
	session string
	removed bool
}

func (o *onePod) find(session string) error {
	if session != o.session || o.removed {
		return errdefs.New(errdefs.NotFound, "no pod here came in session %s", session)
	}
	return nil
}

func (o *onePod) InspectSession(_ context.Context, session string) (any, error) {
	if err := o.find(session); err != nil {
		return nil, err
	}
	return map[string]string{"name": "web", "status": "running"}, nil
}

func (o *onePod) LogsSession(_ context.Context, session string, w io.Writer) error {
	if err := o.find(session); err != nil {
		return err
	}
	_, err := fmt.Fprint(w, "line 1\nline 2\n")
	return err
}

func (o *onePod) RemoveSession(_ context.Context, session string) error {
	if err := o.find(session); err != nil {
		return err
	}
	o.removed = true
	return nil
}

// TestSessionPods reaches a pod at a dock by its session: its state, its
// output, its removal; any other session is errdefs.NotFound, a malformed
// one is refused before it is sent.
func TestSessionPods(t *testing.T) {
	ctx := context.Background()
	pods := &onePod{session: NewSession()}
	c := startDock(t, &Server{Vessels: noVessels{}, Sessions: pods})

	raw, err := c.InspectSession(ctx, pods.session)
	var info map[string]string
	if err != nil || json.Unmarshal(raw, &info) != nil || info["status"] != "running" {
		t.Fatalf("InspectSession: %s, %v", raw, err)
	}
	var logs strings.Builder
	if err := c.LogsSession(ctx, pods.session, &logs); err != nil || logs.String() != "line 1\nline 2\n" {
		t.Fatalf("LogsSession: %q, %v", logs.String(), err)
	}
	other := NewSession()
	if _, err := c.InspectSession(ctx, other); errdefs.KindOf(err) != errdefs.NotFound {
		t.Errorf("InspectSession of a session never seen: %v, want NotFound", err)
	}
	if err := c.LogsSession(ctx, "../pods", io.Discard); errdefs.KindOf(err) != errdefs.InvalidArgument {
		t.Errorf("LogsSession of a malformed session: %v, want InvalidArgument", err)
	}
	if err := c.RemoveSession(ctx, pods.session); err != nil || !pods.removed {
		t.Fatalf("RemoveSession: %v (removed %v)", err, pods.removed)
	}
	if err := c.RemoveSession(ctx, pods.session); errdefs.KindOf(err) != errdefs.NotFound {
		t.Errorf("RemoveSession again: %v, want NotFound", err)
	}
}

// TestNoSessionPods: a dock without SessionPods answers no session.
func TestNoSessionPods(t *testing.T) {
	c := startDock(t, &Server{Vessels: noVessels{}})
	if _, err := c.InspectSession(context.Background(), NewSession()); errdefs.KindOf(err) != errdefs.NotFound {
		t.Errorf("InspectSession: %v, want NotFound", err)
	}
}
