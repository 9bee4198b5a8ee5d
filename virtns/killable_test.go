package virtns

import (
	"context"
	"testing"
	"time"
)

// TestKillableAfter checks that a dump's CRIU becomes killable only once
// it is safe: an interruption before that waits for it.
func TestKillableAfter(t *testing.T) {
	ctx, interrupt := context.WithCancel(context.Background())
	safe := make(chan struct{})
	criuCtx, stop := killableAfter(ctx, safe)
	defer stop()
	interrupt()
	select {
	case <-criuCtx.Done():
		t.Fatal("CRIU became killable before it was safe")
	case <-time.After(20 * time.Millisecond):
	}
	close(safe)
	select {
	case <-criuCtx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("an interrupted, safe CRIU is not killable")
	}

	// stop ends it too, and frees its goroutine, when nothing happened.
	never, stop2 := killableAfter(context.Background(), make(chan struct{}))
	stop2()
	<-never.Done()
}
