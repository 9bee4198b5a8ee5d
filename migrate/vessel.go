package migrate

import (
	"context"
	"os"
	"time"

	"github.com/podctl/podctl/dock"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/pod/vesselpod"
)

// Vessel moves the running vessel name of store to the dock c, whatever
// its ISA, as the pod as (name if empty): the vessel is stopped at a poll
// point, its snapshot (with the module unless the dock has it) sent and
// resumed there, and only then ended and removed here. Any failure
// before the dock reports it running lets it run on here.
//
// releaseHolder, if not nil, runs last, once the vessel runs at the
// destination and is gone here: it removes what held the vessel here (a
// housed vessel's native pod). Its failure loses nothing, and says so.
func Vessel(ctx context.Context, c *dock.Client, store vesselpod.Store, name, as string, releaseHolder func(context.Context) error) (*Result, error) {
	if as == "" {
		as = name
	}
	start := time.Now()
	hello, err := c.Hello(ctx)
	if err != nil {
		return nil, err
	}
	if !hello.Has(dock.CapabilityWasm) {
		return nil, errdefs.New(errdefs.Unsupported, "dock %s does not take Wasm vessels (capabilities: %v)", c.Addr(), hello.Capabilities)
	}
	res := &Result{Pod: as, Dock: c.Addr(), Mode: ViaWasm, SnapshotResult: &SnapshotResult{ISA: hello.ISA}}
	out, err := store.BeginMigration(ctx, name)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	res.WithModule = !c.HasModule(ctx, out.ModuleHash())
	stopped, err := out.Stop(ctx, res.WithModule)
	if err != nil {
		return nil, err
	}
	res.Safepoint, res.Capture, res.Write, res.Bytes = stopped.Safepoint, stopped.Capture, stopped.Write, stopped.Bytes
	f, err := os.Open(out.SnapshotPath())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	t := time.Now()
	ev, err := c.SendVessel(ctx, f, st.Size(), as)
	if err != nil {
		return nil, err
	}
	res.Transfer = time.Since(t) - ev.Restore
	res.Restore = ev.Restore
	res.Downtime = time.Since(out.StoppedAt())
	failpoint.Hit(ctx, "migrate:vessel-restored")
	if err := commit(ctx, out, name); err != nil {
		return nil, err
	}
	res.Total = time.Since(start)
	if err := release(ctx, as, releaseHolder); err != nil {
		return nil, err
	}
	return res, nil
}
