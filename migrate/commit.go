package migrate

import (
	"context"
	"fmt"
	"time"

	"github.com/podctl/podctl/dock"
	"github.com/podctl/podctl/internal/errdefs"
)

// departing is a pod leaving this host, whichever route it takes
// (pod.Outgoing through CRIU, vesselpod.Outgoing as a snapshot): Commit
// removes it here once the destination runs it; Close, without Commit,
// lets it run on here.
type departing interface {
	Commit(ctx context.Context) error
	Close() error
}

// commit ends a migration at its commit point, the destination's
// "restored": it removes the pod here. Past the commit point nothing can
// be lost, since the pod runs at the destination, so a failure here only
// leaves something behind, and the error says so.
func commit(ctx context.Context, out departing, name string) error {
	if err := out.Commit(ctx); err != nil {
		return fmt.Errorf("pod %s runs at the destination, but removing it here failed: %w", name, err)
	}
	return nil
}

// release runs last in a committed migration, if set: it removes what
// held the pod here (a housed vessel's native pod). Like commit, it can
// only leave something behind.
func release(ctx context.Context, name string, f func(context.Context) error) error {
	if f == nil {
		return nil
	}
	if err := f(ctx); err != nil {
		return fmt.Errorf("pod %s runs at the destination, but removing what held it here failed: %w", name, err)
	}
	return nil
}

// handedOver is a departing pod recorded as the dock's (pod.Outgoing and
// vesselpod.Outgoing after HandOver): Reclaim takes it back when the dock
// says it never had it.
type handedOver interface {
	Reclaim(ctx context.Context) error
}

// decideRetry bounds how long a source keeps telling a dock that went
// away (restarting, say) its decision.
const decideRetry = 30 * time.Second

// commitAtDock tells the dock to run the pod it holds prepared, again and
// again (on new connections) until it confirms, it says it never had the
// pod (which then runs here again), or decideRetry passes (the pod then
// stays stopped here, handed over, for recovery to settle).
func commitAtDock(ctx context.Context, out handedOver, c *dock.Client, session string) error {
	deadline := time.Now().Add(decideRetry)
	delay := 50 * time.Millisecond
	for {
		err := c.Decide(ctx, session, true)
		switch {
		case err == nil:
			return nil
		case errdefs.KindOf(err) == errdefs.NotFound:
			if rerr := out.Reclaim(ctx); rerr != nil {
				return fmt.Errorf("the dock lost the pod (%v), and resuming it here failed: %w", err, rerr)
			}
			return fmt.Errorf("the dock lost the pod, which runs here again: %w", err)
		case ctx.Err() != nil || time.Now().After(deadline):
			return fmt.Errorf("the pod is handed over to %s, which has not confirmed it runs it (it stays stopped here; the next podctl command asks the dock again): %w", c.Addr(), err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// abortTimeout bounds the courtesy of telling a dock a migration was
// abandoned.
const abortTimeout = 5 * time.Second

// abortAtDock tells the dock, on a new request, to remove whatever it
// holds of an abandoned migration. It is a courtesy: a pod the dock keeps
// prepared never runs there, and goes when the pod migrates there again.
func abortAtDock(ctx context.Context, c *dock.Client, session string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	c.Decide(ctx, session, false)
}
