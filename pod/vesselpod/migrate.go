package vesselpod

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/podctl/podctl/internal/statedir"
)

// Outgoing is a vessel pod leaving this host: its operation lock is held
// from BeginMigration to Close. Stop stops its guest into a snapshot
// file; Commit ends it here for good; Close (without Commit) lets a
// stopped guest run on.
type Outgoing struct {
	s         Store
	name      string
	man       *Manifest
	lock      *statedir.Lock
	ctl       *control
	file      string // relative to the pod's directory
	stoppedAt time.Time
	done      bool

	// cleanupCtx is the context of Close: BeginMigration's without its
	// cancellation, so that a guest stopped for a migration that a
	// Ctrl-C interrupts is still told to run on (Close, an io.Closer,
	// takes no context).
	cleanupCtx context.Context
}

// StopResult reports Outgoing.Stop.
type StopResult struct {
	StopTimings
	// Bytes is the snapshot file's size.
	Bytes int64
}

// BeginMigration takes a running vessel pod for migration.
func (s Store) BeginMigration(ctx context.Context, name string) (_ *Outgoing, err error) {
	l, err := s.lock(name)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			l.Unlock()
		}
	}()
	m, err := s.requireRunning(name)
	if err != nil {
		return nil, err
	}
	c, err := s.dial(name)
	if err != nil {
		return nil, err
	}
	return &Outgoing{s: s, name: name, man: m, lock: l, ctl: c, file: migrateFile, cleanupCtx: context.WithoutCancel(ctx)}, nil
}

// ModuleHash is the vessel's prepared module's hash.
func (o *Outgoing) ModuleHash() [32]byte {
	h, _ := parseHash(o.man.ModuleHash)
	return h
}

// Stop stops the guest at its next poll point and writes its snapshot
// (with the module if withModule) to SnapshotPath. The file is not synced
// to disk: it is sent at once and removed, and the guest it was taken
// from runs on here until the destination runs it.
func (o *Outgoing) Stop(ctx context.Context, withModule bool) (*StopResult, error) {
	o.stoppedAt = time.Now()
	rep, err := o.ctl.stop(ctx, o.file, withModule, true)
	if err != nil {
		o.stoppedAt = time.Time{}
		return nil, fmt.Errorf("migrate %s: stop: %w", o.name, err)
	}
	return &StopResult{StopTimings: rep.StopTimings, Bytes: rep.Bytes}, nil
}

// SnapshotPath is the file Stop writes.
func (o *Outgoing) SnapshotPath() string { return filepath.Join(o.s.podDir(o.name), o.file) }

// StoppedAt is when Stop asked the guest to stop: its last moment running
// here.
func (o *Outgoing) StoppedAt() time.Time { return o.stoppedAt }

// Commit ends the stopped guest and removes the pod: it runs elsewhere now.
func (o *Outgoing) Commit(ctx context.Context) error {
	o.done = true
	if err := o.ctl.do(ctx, request{Op: opEnd}); err != nil {
		return err
	}
	if err := o.s.waitGone(ctx, o.name); err != nil {
		return err
	}
	return os.RemoveAll(o.s.podDir(o.name))
}

// Close lets a stopped guest run on unless Commit, HandOver or Reclaim
// was called, and releases the pod.
func (o *Outgoing) Close() error {
	var err error
	if !o.done && !o.stoppedAt.IsZero() && !o.HandedOver() {
		err = o.ctl.do(o.cleanupCtx, request{Op: opContinue})
	}
	os.Remove(o.SnapshotPath())
	o.ctl.Close()
	o.lock.Unlock()
	return err
}
