package migrate

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// fakeDeparting records what the commit protocol asks of a departing pod.
type fakeDeparting struct {
	commitErr error
	committed bool
}

func (f *fakeDeparting) Commit(context.Context) error { f.committed = true; return f.commitErr }
func (f *fakeDeparting) Close() error                 { return nil }

func TestCommit(t *testing.T) {
	ctx := context.Background()
	out := &fakeDeparting{}
	if err := commit(ctx, out, "web"); err != nil || !out.committed {
		t.Fatalf("commit: %v (committed %v)", err, out.committed)
	}
	// The pod could not be removed here: the error says it runs at the
	// destination, so that nobody restores it here.
	out = &fakeDeparting{commitErr: errors.New("device busy")}
	err := commit(ctx, out, "web")
	if err == nil || !strings.Contains(err.Error(), "web runs at the destination, but removing it here failed: device busy") {
		t.Fatalf("failed commit: %v", err)
	}
}

func TestRelease(t *testing.T) {
	ctx := context.Background()
	if err := release(ctx, "web", nil); err != nil {
		t.Fatalf("nothing to release: %v", err)
	}
	err := release(ctx, "web", func(context.Context) error { return errors.New("veth busy") })
	if err == nil || !strings.Contains(err.Error(), "web runs at the destination, but removing what held it here failed: veth busy") {
		t.Fatalf("failed release: %v", err)
	}
}
