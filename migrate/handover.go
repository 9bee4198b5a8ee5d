package migrate

import (
	"context"
	"time"

	"github.com/podctl/podctl/dock"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/pki"
	"github.com/podctl/podctl/pod/handle"
)

// resolveTimeout bounds recovery's question to a dock about a handover.
const resolveTimeout = 5 * time.Second

// ResolveHandover settles a pod that a migration handed over to a dock
// before its podctl died (a handle.HandoverResolver; pod.Manager's and vesselpod.Store's): it tells the dock again
// to run the pod, reaching it as the migration did. ran is false when
// the dock never had the pod, which then runs here again.
func ResolveHandover(ctx context.Context, h handle.Handover) (ran bool, err error) {
	cfg, err := pki.ClientConfig(h.PKI, h.Cert)
	if err != nil {
		return false, err
	}
	c := dock.NewClient(h.Dock, cfg)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	err = c.Decide(ctx, h.Session, true)
	if errdefs.KindOf(err) == errdefs.NotFound {
		return false, nil
	}
	return err == nil, err
}
