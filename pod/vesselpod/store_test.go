package vesselpod

import (
	"context"
	"errors"
	"os"
	"testing"
)

// TestRecoverStopsWhenCancelled checks that Recover removes a pod
// directory a dead podctl left without a manifest, but not once its
// context is done: it then stops before the next pod, and the next
// Recover finishes the job.
func TestRecoverStopsWhenCancelled(t *testing.T) {
	s := Store{Root: t.TempDir()}
	dir := s.podDir("abandoned")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Recover(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Recover with a cancelled context = %v, want Canceled", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("a cancelled Recover removed %s: %v", dir, err)
	}
	if err := s.Recover(t.Context()); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Recover left %s: %v", dir, err)
	}
}
