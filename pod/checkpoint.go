package pod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/virtns"
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
	// CRIU is CRIU's own account of its dump or restore (its stats
	// files), when it wrote one.
	CRIU *virtns.CRIUStats `json:"criu,omitempty"`
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
	file, err := checkpoint.CreateFile(out)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", name, err)
	}
	defer file.Close()
	imagesDir, err := m.tempDir("images-" + man.ID)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(imagesDir)

	res := &CheckpointResult{Archive: file.Path()}
	fp := checkpoint.Begin(ctx, m.dumpTarget(man))
	if err := fp.Dump(ctx, virtns.CheckpointOptions{ImagesDir: imagesDir}); err != nil {
		return nil, err
	}
	res.Timings.Dump = time.Since(fp.FrozenAt)
	// CRIU's statistics only inform: a dump without them is whole.
	res.Timings.CRIU, _ = virtns.DumpStats(imagesDir)
	var layerRead func() error
	if o.LeaveRunning {
		// Once everything the pod could change has been read, it may run
		// on while the archive is finished and made durable (a pod that
		// stops must wait, or a crash could lose it).
		layerRead = func() error {
			err := fp.Resume()
			res.Timings.Frozen = fp.ThawedAt.Sub(fp.FrozenAt)
			if err != nil {
				return fmt.Errorf("resume: %w", err)
			}
			return nil
		}
	}
	am, err := m.archiveManifest(man, fp.CRIUVersion(), checkpoint.PagesInArchive)
	if err != nil {
		return nil, m.resumeAfter(name, fp, err)
	}
	writeStart := time.Now()
	res.Bytes, err = file.Write(ctx, o.Compression, am, imagesDir, m.upperPath(man, "/"), m.volumeDirs(man), layerRead)
	res.Timings.Write = time.Since(writeStart)
	if err != nil {
		return nil, m.resumeAfter(name, fp, fmt.Errorf("write archive: %w", err))
	}
	if !o.LeaveRunning {
		// The checkpoint is durable: the pod is over, so this is the end
		// of its time frozen.
		res.Timings.Frozen = time.Since(fp.FrozenAt)
		err = m.stopCheckpointed(ctx, man, o.Output == "", file.Path())
	}
	res.Timings.Total = time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: archive written to %s, but: %w", name, file.Path(), err)
	}
	return res, nil
}

// resumeAfter resumes a pod whose checkpoint failed with err, unless it
// runs already (it was resumed once its writable layer was read), and
// says what happened.
func (m *Manager) resumeAfter(name string, fp *checkpoint.Frozen, err error) error {
	if !fp.ThawedAt.IsZero() {
		return fmt.Errorf("checkpoint %s: %w", name, err)
	}
	if rerr := fp.Resume(); rerr != nil {
		return fmt.Errorf("checkpoint %s: %w (and resuming the pod failed: %v)", name, err, rerr)
	}
	return fmt.Errorf("checkpoint %s: %w", name, err)
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

// dumpTarget is the pod as the checkpoint stage sees it.
func (m *Manager) dumpTarget(man *Manifest) checkpoint.Target {
	return checkpoint.Target{Name: man.Spec.Name, ID: man.ID, CgroupPath: man.CgroupPath, Endpoint: man.Endpoint, Runtime: m.store.runtime()}
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
func (m *Manager) archiveManifest(man *Manifest, criuVersion string, pages checkpoint.Pages) (*checkpoint.Manifest, error) {
	podJSON, err := json.Marshal(man)
	if err != nil {
		return nil, err
	}
	var ports []checkpoint.PublishedPort
	for _, p := range man.Spec.Ports {
		ports = append(ports, checkpoint.PublishedPort{HostPort: int(p.HostPort), PodPort: int(p.PodPort), Protocol: p.Protocol})
	}
	am, err := checkpoint.NewManifest(podJSON, man.Endpoint, ports, criuVersion, pages)
	if err != nil {
		return nil, err
	}
	for _, name := range man.Spec.NamedVolumes() {
		v, err := m.loadVolume(name, nil)
		if err != nil {
			return nil, err
		}
		am.Volumes = append(am.Volumes, checkpoint.Volume{Name: name, ID: v.ID})
	}
	return am, nil
}

// volumeDirs are the host directories of the pod's named volumes, in the
// order of archiveManifest's.
func (m *Manager) volumeDirs(man *Manifest) []string {
	var dirs []string
	for _, name := range man.Spec.NamedVolumes() {
		dirs = append(dirs, m.store.volumeData(name))
	}
	return dirs
}
