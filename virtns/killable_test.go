package virtns

import (
	"context"
	"errors"
	"os/exec"
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

// TestRunCRIUKillsOnlyItsOwn checks that cancelling one CRIU run kills
// the child that holds that run's images directory, whatever its name,
// and spares a concurrent run on another directory. The children stand
// in for CRIU: shells that open their directory late (as CRIU does once
// it has read its request) and then wait.
func TestRunCRIUKillsOnlyItsOwn(t *testing.T) {
	mine, other := t.TempDir(), t.TempDir()
	run := func(ctx context.Context, dir string) error {
		return runCRIU(ctx, dir, func() error {
			// sleep first, so the cancellation comes before the
			// directory is open; then hold it open and wait.
			return exec.Command("sh", "-c", `sleep 0.2; exec 7<"$1"; exec sleep 600`, "sh", dir).Run()
		})
	}
	otherCtx, stopOther := context.WithCancel(context.Background())
	otherDone := make(chan error, 1)
	go func() { otherDone <- run(otherCtx, other) }()

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	mineDone := make(chan error, 1)
	go func() { mineDone <- run(ctx, mine) }()
	select {
	case err := <-mineDone:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled run returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled run whose CRIU opened its directory late was not killed")
	}
	select {
	case err := <-otherDone:
		t.Fatalf("the other run ended with the cancelled one: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	stopOther()
	select {
	case <-otherDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the other run was not killed once cancelled")
	}
}
