package migrate

import (
	"context"
	"fmt"
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
