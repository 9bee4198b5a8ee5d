package pod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/internal/cpufeat"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/internal/statedir"
	"github.com/podctl/podctl/internal/version"
	"github.com/podctl/podctl/virtns"
	"golang.org/x/sys/unix"
)

// archiveName is where a pod's last checkpoint is kept in its directory.
const archiveName = "checkpoint.tar.zst"

// CheckpointOptions tune Manager.Checkpoint.
type CheckpointOptions struct {
	// Output is the archive's path; empty keeps the archive in the pod's
	// directory and leaves the pod "checkpointed", ready for Restore.
	Output string
	// LeaveRunning lets the pod carry on once it is dumped.
	LeaveRunning bool
	// Compression of the archive.
	Compression checkpoint.Compression
}

// Timings are the phases of a checkpoint, restore or migration.
type Timings struct {
	// Frozen is how long the pod was stopped on the source: from the
	// freeze to its resumption (or, when it was not to resume, to its
	// last moment there).
	Frozen time.Duration `json:"frozenNs"`
	// Dump is CRIU's dump.
	Dump time.Duration `json:"dumpNs"`
	// Write is writing (or sending) the archive after the dump.
	Write time.Duration `json:"writeNs"`
	// Restore is CRIU's restore plus reconnecting the network.
	Restore time.Duration `json:"restoreNs,omitempty"`
	// Total is the whole operation.
	Total time.Duration `json:"totalNs"`
}

// CheckpointResult describes a finished checkpoint.
type CheckpointResult struct {
	Archive string  `json:"archive"`
	Bytes   int64   `json:"bytes"`
	Timings Timings `json:"timings"`
}

// Checkpoint freezes a running pod, dumps it with CRIU and writes it, with
// its writable layer and manifest, into one archive. The pod stays frozen
// and cut from the network until its writable layer has been read (with
// LeaveRunning) or the archive is safely on disk (without): if anything
// fails before then it is thawed and carries on as if nothing happened; if
// all went well it either carries on (LeaveRunning) or is stopped and kept
// as "checkpointed" (or, with Output set, simply left stopped).
func (m *Manager) Checkpoint(ctx context.Context, name string, o CheckpointOptions) (*CheckpointResult, error) {
	start := time.Now()
	man, pl, err := m.loadLocked(ctx, name)
	if err != nil {
		return nil, err
	}
	defer pl.Unlock()
	if err := m.requireRunning(ctx, man); err != nil {
		return nil, err
	}
	if o.Compression == "" {
		o.Compression = checkpoint.CompressionZstd
	}
	out := o.Output
	if out == "" {
		out = filepath.Join(m.store.podDir(name), archiveName)
	}
	out, err = filepath.Abs(out)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return nil, errdefs.New(errdefs.InvalidArgument, "checkpoint %s: cannot write %s: %v", name, out, err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	imagesDir, err := m.tempDir("images-" + man.ID)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(imagesDir)

	res := &CheckpointResult{Archive: out}
	fp := m.newFrozenPod(ctx, man)
	if err := fp.freezeAndDump(ctx, virtns.CheckpointOptions{ImagesDir: imagesDir}); err != nil {
		return nil, err
	}
	res.Timings.Dump = time.Since(fp.frozenAt)
	writeStart := time.Now()
	resumed := false
	err = func() error {
		w, err := checkpoint.NewWriter(tmp, o.Compression, m.archiveManifest(man, fp.criuVersion(), false))
		if err != nil {
			return err
		}
		if err := w.AddCRIUImages(imagesDir); err != nil {
			return err
		}
		if err := w.AddUpperLayer(m.upperPath(man, "/")); err != nil {
			return err
		}
		if o.LeaveRunning {
			// Everything the pod could change has been read: it may run
			// on while the archive is finished and made durable (a pod
			// that stops must wait, or a crash could lose it).
			resumed = true
			err := fp.resume()
			res.Timings.Frozen = fp.thawedAt.Sub(fp.frozenAt)
			if err != nil {
				return fmt.Errorf("resume: %w", err)
			}
		}
		if err := w.Close(); err != nil {
			return err
		}
		res.Bytes = w.BytesWritten()
		failpoint.Hit("checkpoint:written")
		if err := tmp.Sync(); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), out); err != nil {
			return err
		}
		return statedir.SyncDir(filepath.Dir(out))
	}()
	res.Timings.Write = time.Since(writeStart)
	if err != nil {
		if resumed {
			return nil, fmt.Errorf("checkpoint %s: write archive: %w", name, err)
		}
		rerr := fp.resume()
		res.Timings.Frozen = fp.thawedAt.Sub(fp.frozenAt)
		if rerr != nil {
			return nil, fmt.Errorf("checkpoint %s: %w (and resuming the pod failed: %v)", name, err, rerr)
		}
		return nil, fmt.Errorf("checkpoint %s: write archive: %w", name, err)
	}
	if !o.LeaveRunning {
		// The checkpoint is durable: the pod is over, so this is the end
		// of its time frozen.
		res.Timings.Frozen = time.Since(fp.frozenAt)
		err = m.stopCheckpointed(ctx, man, o.Output == "", out)
	}
	res.Timings.Total = time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: archive written to %s, but: %w", name, out, err)
	}
	return res, nil
}

func (m *Manager) requireRunning(ctx context.Context, man *Manifest) error {
	st, err := m.status(ctx, man)
	if err != nil {
		return err
	}
	if st.Status != string(virtns.StatusRunning) {
		return errdefs.New(errdefs.NotRunning, "pod %s is not running (%s)", man.Spec.Name, st.Status)
	}
	return nil
}

// tempDir makes a private scratch directory under the state root.
func (m *Manager) tempDir(prefix string) (string, error) {
	dir := filepath.Join(m.opts.Root, "tmp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return os.MkdirTemp(dir, prefix+"-")
}

// frozenPod is a pod stopped by the freezer, cut from the network and
// dumped, that can still either resume or be stopped for good.
type frozenPod struct {
	m        *Manager
	man      *Manifest
	frozenAt time.Time // the pod's last moment running
	lockedAt time.Time // frozen and off the network: CRIU starts
	thawedAt time.Time // running again (resume)
	criuVer  chan string

	// cleanupCtx is the context of resume: newFrozenPod's without its
	// cancellation, since a frozen pod must thaw even after a Ctrl-C (and
	// Outgoing.Abort, which resumes it, takes no context).
	cleanupCtx context.Context
}

// newFrozenPod prepares to freeze and dump a pod; it starts asking CRIU
// for its version meanwhile, for the archive's manifest.
func (m *Manager) newFrozenPod(ctx context.Context, man *Manifest) *frozenPod {
	fp := &frozenPod{m: m, man: man, cleanupCtx: context.WithoutCancel(ctx), criuVer: make(chan string, 1)}
	go func() { fp.criuVer <- virtns.CRIUVersion(ctx) }()
	return fp
}

// freezeAndDump freezes the pod, locks its network and dumps it with
// CRIU, leaving it frozen. The freeze waits until CRIU is ready to start
// (see virtns.CheckpointOptions.Freeze); it records when the pod stopped
// (frozenAt) before anything else, so that o.Ready, called during a lazy
// dump, sees it. On error the pod has been resumed.
func (fp *frozenPod) freezeAndDump(ctx context.Context, o virtns.CheckpointOptions) error {
	man := fp.man
	// The runtime calls Freeze once CRIU is ready to start.
	o.Freeze = func() error {
		lastRan, err := virtns.Freeze(ctx, man.CgroupPath)
		if err != nil {
			return err
		}
		fp.frozenAt = lastRan
		if err := (virtns.Firewall{}).LockPod(ctx, man.ID, man.Endpoint); err != nil {
			virtns.Thaw(fp.cleanupCtx, man.CgroupPath)
			return err
		}
		fp.lockedAt = time.Now()
		return nil
	}
	// The pod is frozen by podctl, so CRIU leaves it frozen (it restores
	// the freezer state it found) instead of killing it: the pod can still
	// resume if what follows the dump fails.
	o.LeaveRunning = true
	if err := fp.m.store.runtime().Checkpoint(ctx, man.ID, o); err != nil {
		if fp.lockedAt.IsZero() {
			// Not frozen, or thawed already by Freeze itself.
			return fmt.Errorf("checkpoint %s: %w", man.Spec.Name, err)
		}
		if rerr := fp.resume(); rerr != nil {
			return fmt.Errorf("%w (and resuming the pod failed: %v)", err, rerr)
		}
		return err
	}
	failpoint.Hit("checkpoint:dumped")
	return nil
}

func (fp *frozenPod) criuVersion() string { return <-fp.criuVer }

// resume thaws the pod, then lifts its network lock. Thawing comes
// first because the lock takes longest to lift (nftables commits a rule
// deletion only after an RCU grace period, some 8 ms here): the pod runs
// that much sooner, its frames dropped a little longer, as they were
// while it was frozen.
func (fp *frozenPod) resume() error {
	ctx := fp.cleanupCtx
	err := virtns.Thaw(ctx, fp.man.CgroupPath)
	fp.thawedAt = time.Now()
	return errors.Join(err, virtns.Firewall{}.UnlockPod(ctx, fp.man.ID))
}

// stopCheckpointed ends a pod whose checkpoint is safely written. With
// keep, the pod stays known as "checkpointed" (its name, address and
// ports still reserved for its restore), its archive at archive.
// Otherwise it is just stopped, like a pod whose command exited.
//
// The archive is durable by then, so this runs to the end even when ctx
// is cancelled.
func (m *Manager) stopCheckpointed(ctx context.Context, man *Manifest, keep bool, archive string) error {
	ctx = context.WithoutCancel(ctx)
	// The pod's processes, network, rules and root filesystem are taken
	// down at once (deleting a veth alone waits some 15 ms for the
	// kernel); only the root filesystem must wait for the processes.
	//
	// The network lock stays: the killed processes' sockets may still
	// send (a FIN, a reset) until the veth is gone, and nothing of that
	// must reach their peers, which the restored pod will talk to
	// again. Restore (or rm) lifts it, restore while CRIU runs.
	procs := func() error { return m.store.runtime().Destroy(ctx, man.ID, man.CgroupPath) }
	network := func() error {
		return errors.Join(virtns.DetachVeth(ctx, man.Endpoint), virtns.DeleteNetNS(ctx, m.netnsPath(man)))
	}
	if !keep {
		return parallel(procs, network)
	}
	rootfs := func() error {
		if err := procs(); err != nil {
			return err
		}
		return m.rootfs(man).Unmount(ctx)
	}
	rules := func() error { return virtns.Firewall{}.RemovePodRules(ctx, man.ID) }
	if err := parallel(rootfs, network, rules); err != nil {
		return err
	}
	man.State = StateCheckpointed
	man.Checkpoint = archive
	return m.store.save(man)
}

// parallel runs fs concurrently and joins their errors.
func parallel(fs ...func() error) error {
	errs := make(chan error, len(fs))
	for _, f := range fs {
		go func() { errs <- f() }()
	}
	var all []error
	for range fs {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// archiveManifest describes a pod for the archive about to be written.
func (m *Manager) archiveManifest(man *Manifest, criuVer string, lazy bool) *checkpoint.Manifest {
	podJSON, _ := json.Marshal(man)
	feats, _ := cpufeat.Host()
	var uts unix.Utsname
	unix.Uname(&uts)
	host, _ := os.Hostname()
	am := &checkpoint.Manifest{
		FormatVersion: checkpoint.FormatVersion,
		PodctlVersion: version.Version,
		CreatedAt:     time.Now().UTC(),
		Source: checkpoint.Source{
			ISA: runtime.GOARCH, CPUFeatures: feats, Kernel: unix.ByteSliceToString(uts.Release[:]),
			CRIUVersion: criuVer, Hostname: host,
		},
		Pod: podJSON,
		Network: checkpoint.Network{
			IP: man.Endpoint.IP.String(), MAC: man.Endpoint.MAC,
		},
		Images: checkpoint.Images{Kind: "criu", Lazy: lazy, PagesIncluded: !lazy},
	}
	for _, p := range man.Spec.Ports {
		am.Network.Ports = append(am.Network.Ports, checkpoint.PublishedPort{HostPort: int(p.HostPort), PodPort: int(p.PodPort), Protocol: p.Protocol})
	}
	return am
}
