package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/podctl/podctl/dock"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/pod/handle"
	"github.com/podctl/podctl/pod/vesselpod"
)

// Vessel moves the running vessel name of store to the dock c, whatever
// its ISA, as the pod o.Name (name if empty): the vessel is stopped at a
// poll point, its snapshot (with the module unless the dock has it) sent
// and resumed there, held; then, as for a native pod (see
// ARCHITECTURE.md, "The commit point"), the vessel is recorded here as
// handed over, the dock is told to run it, and it is ended and removed
// here. Any failure before the handover lets it run on here, and the dock
// is told to abort.
//
// releaseHolder, if not nil, runs last, once the vessel runs at the
// destination and is gone here: it removes what held the vessel here (a
// housed vessel's native pod). Its failure loses nothing, and says so.
func Vessel(ctx context.Context, c *dock.Client, store vesselpod.Store, name string, o Options, releaseHolder func(context.Context) error) (*Result, error) {
	as := o.Name
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
	session := dock.NewSession()
	res.Session = session
	defer func() {
		if !out.HandedOver() {
			abortAtDock(ctx, c, session)
		}
	}()
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
	ev, err := c.SendVessel(ctx, f, st.Size(), as, session)
	if err == nil && failpoint.Armed("migrate:cut-at-restored") {
		// The dock sent "restored"; the connection dies before this
		// podctl makes anything of it.
		c.Cut()
		err = errors.New("injected failure: the connection was cut before \"restored\" was read")
	}
	if err != nil {
		return nil, err
	}
	res.Transfer = time.Since(t) - ev.Restore
	res.Restore = ev.Restore
	failpoint.Hit(ctx, "migrate:restored-read")
	// The commit point: the dock holds the vessel prepared; once
	// recorded here as handed over, it must never run here again.
	if err := out.HandOver(handle.Handover{Dock: c.Addr(), Session: session, PKI: o.PKI, Cert: o.Cert}); err != nil {
		return nil, fmt.Errorf("migrate %s: %w", name, err)
	}
	failpoint.Hit(ctx, "migrate:handed-over")
	if failpoint.Armed("migrate:cut-at-commit") {
		c.Cut()
	}
	if err := commitAtDock(ctx, out, c, session); err != nil {
		return nil, fmt.Errorf("migrate %s: %w", name, err)
	}
	res.Downtime = time.Since(out.StoppedAt())
	failpoint.Hit(ctx, "migrate:committed")
	if err := commit(ctx, out, name); err != nil {
		return nil, err
	}
	res.Total = time.Since(start)
	if err := release(ctx, as, releaseHolder); err != nil {
		return nil, err
	}
	return res, nil
}
