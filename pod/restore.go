package pod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/names"
	"github.com/podctl/podctl/internal/statedir"
	"github.com/podctl/podctl/restart"
	"github.com/podctl/podctl/virtns"
)

// RestoreOptions tune a restore.
type RestoreOptions struct {
	// Name is the restored pod's name; empty keeps the archived one. The
	// pod keeps its hostname, address and MAC whatever its name.
	Name string
	// Force restores even when this host's CPU lacks features the
	// checkpointed processes may use.
	Force bool
	// RefusePrivileged refuses a privileged pod (Spec.Privileged): a dock
	// must not give a peer's pod the host's root.
	RefusePrivileged bool
	// Images, if set, are the only images the pod may have here: a dock
	// restores what a peer's manifest describes and must not let it name
	// any directory of this host. Nil allows any image, as for an archive
	// root restores by hand.
	Images *ImagePolicy
}

// ImagePolicy lists the images a dock serves: the host image, and
// directories under Roots.
type ImagePolicy struct {
	// Roots are directories whose subdirectories are images.
	Roots []string
}

// Check refuses image unless it is the host image or lies, symbolic
// links resolved, under one of the policy's roots.
func (p *ImagePolicy) Check(image string) error {
	if image == ImageHost {
		return nil
	}
	real, err := filepath.EvalSymlinks(image)
	if err == nil {
		for _, root := range p.Roots {
			realRoot, err := filepath.EvalSymlinks(root)
			if err != nil {
				continue
			}
			if rel, err := filepath.Rel(realRoot, real); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
				return nil
			}
		}
	}
	return errdefs.New(errdefs.InvalidImage, "image %s is not served here (this dock serves the host image and images under %s)", image, strings.Join(append([]string{}, p.Roots...), ", "))
}

// Restore restarts a pod from source: an archive file, or the name of a
// pod checkpointed on this host. On error nothing of the restore is left
// (a checkpointed pod stays checkpointed).
func (m *Manager) Restore(ctx context.Context, source string, o RestoreOptions) (*Manifest, *Timings, error) {
	start := time.Now()
	path := source
	fromPod := false
	if _, err := os.Stat(source); err != nil {
		if names.Validate(source) != nil || strings.ContainsRune(source, '/') {
			return nil, nil, errdefs.New(errdefs.NotFound, "restore: no such archive: %s", source)
		}
		man, err := m.store.Load(source)
		if err != nil {
			return nil, nil, errdefs.New(errdefs.NotFound, "restore: no archive file or checkpointed pod named %s", source)
		}
		if man.State != StateCheckpointed {
			return nil, nil, errdefs.New(errdefs.Conflict, "restore: pod %s is %s, not checkpointed", source, man.State)
		}
		if o.Name != "" && o.Name != source {
			return nil, nil, errdefs.New(errdefs.InvalidArgument, "restore: --name cannot rename a checkpointed pod; restore it from its archive file instead")
		}
		path, fromPod = man.Checkpoint, true
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	rd, err := restart.NewReader(f, restart.DefaultLimits())
	if err != nil {
		return nil, nil, err
	}
	defer rd.Close()
	am, err := rd.Manifest()
	if err != nil {
		return nil, nil, err
	}
	if !am.Images.PagesIncluded {
		return nil, nil, errdefs.New(errdefs.InvalidImage, "archive: its memory pages are not in it (they traveled beside it, in a migration): it cannot be restored from a file")
	}
	var in *Incoming
	if fromPod {
		in, err = m.receiveCheckpointed(ctx, source, am, o)
	} else {
		in, err = m.Receive(ctx, am, o)
	}
	if err != nil {
		return nil, nil, err
	}
	defer in.Close()
	ex, err := rd.Extract(ctx, in.Staging())
	if err != nil {
		return nil, nil, in.fail(err)
	}
	t := &Timings{}
	rs := time.Now()
	man, err := in.Start(ctx, ex, false)
	if err != nil {
		return nil, nil, err
	}
	if err := in.Commit(); err != nil {
		return nil, nil, err
	}
	t.Restore = time.Since(rs)
	t.CRIU, _ = virtns.RestoreStats(ex.CRIUDir)
	t.Total = time.Since(start)
	return man, t, nil
}

// Incoming is a pod being restored on this host: its name, address and
// published ports are reserved, nothing of it runs yet. Start runs it,
// Commit makes it this host's; Abort (or Close before Commit) leaves
// nothing of it.
type Incoming struct {
	m       *Manager
	man     *Manifest
	lock    *statedir.Lock
	staging string
	// cleanupCtx is the context of Abort: Receive's without its
	// cancellation, so that a restore interrupted by a Ctrl-C is still
	// rolled back in full (Abort, Undo and Close take no context).
	cleanupCtx context.Context
	// fromCheckpoint is a restore of a pod checkpointed on this host:
	// aborting puts it back to checkpointed instead of removing it.
	fromCheckpoint bool
	done           bool
	// postCopy is held while the pod's memory arrives (PagesPending).
	postCopy *statedir.Lock
}

// Manifest is the pod as it will be on this host.
func (in *Incoming) Manifest() *Manifest { return in.man }

// Staging is the scratch directory the archive is extracted into; it is
// removed by Close.
func (in *Incoming) Staging() string { return in.staging }

// Receive validates an archive's manifest against this host and reserves
// what the pod needs: its name (or o.Name), its very address and its
// published ports. Conflicts are refused here, before anything is
// extracted or restored.
func (m *Manager) Receive(ctx context.Context, am *checkpoint.Manifest, o RestoreOptions) (*Incoming, error) {
	if err := restart.CheckRestorable(am, o.Force); err != nil {
		return nil, err
	}
	var src Manifest
	if err := json.Unmarshal(am.Pod, &src); err != nil {
		return nil, errdefs.New(errdefs.InvalidImage, "archive: bad pod description: %v", err)
	}
	spec := src.Spec
	if o.Name != "" {
		spec.Name = o.Name
	}
	if err := spec.validate(); err != nil {
		return nil, err
	}
	ip, err := netip.ParseAddr(am.Network.IP)
	if err != nil || ip != src.Endpoint.IP || am.Network.MAC != virtns.NewEndpoint(ip).MAC {
		return nil, errdefs.New(errdefs.InvalidImage, "archive: inconsistent network identity (%s, %s)", am.Network.IP, am.Network.MAC)
	}
	if err := m.supersede(ctx, spec.Name, src.ID); err != nil {
		return nil, err
	}
	if o.RefusePrivileged && spec.Privileged {
		return nil, errdefs.New(errdefs.Unsupported, "pod %s is privileged: a dock does not receive privileged pods", spec.Name)
	}
	if o.Images != nil {
		if err := o.Images.Check(spec.Image); err != nil {
			return nil, err
		}
	}
	if spec.Image != ImageHost {
		if err := virtns.ValidateImage(spec.Image); err != nil {
			return nil, err
		}
	}
	for _, p := range spec.Ports {
		if err := probeHostPort(p); err != nil {
			return nil, err
		}
	}
	// The pod's veth keeps its name (derived from the address): an
	// interface of that name that is not ours would be in the way, and
	// rolling back must never delete it.
	network := spec.Network
	if network == "" {
		network = DefaultNetwork
	}
	if owner, _ := m.store.ipLeases(network).Owner(ip.String()); owner != "" && m.store.podIDExists(owner) {
		return nil, errdefs.New(errdefs.Conflict, "address %s is already taken on this host (by %s)", ip, m.podNameByID(owner))
	}
	if ep := virtns.NewEndpoint(ip); virtns.LinkExists(ctx, ep.HostVeth) {
		return nil, errdefs.New(errdefs.Conflict, "interface %s (for address %s) already exists on this host", ep.HostVeth, ip)
	}
	man, pl, err := m.reserve(ctx, spec, reservation{IP: ip, Hostname: src.hostname()})
	if err != nil {
		return nil, err
	}
	man.SourceID = src.ID
	in := &Incoming{m: m, man: man, lock: pl, cleanupCtx: context.WithoutCancel(ctx)}
	if in.staging, err = m.tempDir("restore-" + man.ID); err != nil {
		return nil, in.fail(err)
	}
	return in, nil
}

// receiveCheckpointed starts the restore of a pod checkpointed here.
func (m *Manager) receiveCheckpointed(ctx context.Context, name string, am *checkpoint.Manifest, o RestoreOptions) (*Incoming, error) {
	if err := restart.CheckRestorable(am, o.Force); err != nil {
		return nil, err
	}
	man, pl, err := m.loadLocked(ctx, name)
	if err != nil {
		return nil, err
	}
	if man.State != StateCheckpointed {
		pl.Unlock()
		return nil, errdefs.New(errdefs.Conflict, "restore: pod %s is %s, not checkpointed", name, man.State)
	}
	for _, p := range man.Spec.Ports {
		if err := probeHostPort(p); err != nil {
			pl.Unlock()
			return nil, err
		}
	}
	man.State = StateRestoring
	if err := m.store.save(man); err != nil {
		pl.Unlock()
		return nil, err
	}
	in := &Incoming{m: m, man: man, lock: pl, cleanupCtx: context.WithoutCancel(ctx), fromCheckpoint: true}
	if in.staging, err = m.tempDir("restore-" + man.ID); err != nil {
		return nil, in.fail(err)
	}
	return in, nil
}

// fail aborts the restore and returns err (with the abort's own failure).
func (in *Incoming) fail(err error) error {
	if aerr := in.Abort(); aerr != nil {
		return fmt.Errorf("%w (and rolling back failed: %v)", err, aerr)
	}
	return err
}

// Start restores the pod from the extracted archive ex: its CRIU images,
// its writable layer and named volumes (moved into place, see
// placeVolumes); it reconnects it to the network and publishes its
// ports. With lazy, memory pages come from a `criu lazy-pages` daemon the
// caller runs on ex.CRIUDir. On error the restore is aborted.
func (in *Incoming) Start(ctx context.Context, ex *restart.Extracted, lazy bool) (*Manifest, error) {
	return in.start(ctx, ex, lazy, false)
}

func (in *Incoming) start(ctx context.Context, ex *restart.Extracted, lazy, held bool) (*Manifest, error) {
	m, man := in.m, in.man
	podDir := m.store.podDir(man.Spec.Name)
	criuDir := ex.CRIUDir
	err := func() error {
		if err := errors.Join(os.RemoveAll(filepath.Join(podDir, virtns.UpperDir)), os.RemoveAll(filepath.Join(podDir, "work"))); err != nil {
			return err
		}
		if err := os.Rename(ex.UpperDir, filepath.Join(podDir, virtns.UpperDir)); err != nil {
			return err
		}
		if err := m.placeVolumes(ctx, man, ex.Manifest.Volumes, ex.VolumeDirs); err != nil {
			return err
		}
		t, err := m.restartTarget(man)
		if err != nil {
			return err
		}
		t.Held = held
		return restart.Start(ctx, t, criuDir, lazy)
	}()
	if err != nil {
		return nil, in.fail(fmt.Errorf("restore %s: %w", man.Spec.Name, err))
	}
	return man, nil
}

// restartTarget is the pod as the restart stage restores it.
func (m *Manager) restartTarget(man *Manifest) (restart.Target, error) {
	cfg, err := m.podConfig(man)
	if err != nil {
		return restart.Target{}, err
	}
	return restart.Target{
		ID: man.ID, Rootfs: m.rootfs(man), NetNSPath: m.netnsPath(man),
		Network: man.Network, Endpoint: man.Endpoint, Ports: portForwards(man.Spec.Ports),
		Config: cfg, Runtime: m.store.runtime(),
	}, nil
}

// Commit records the started pod as this host's. Until then the pod runs
// but is still in a transitional state: Close (or, after a crash, the next
// podctl's recovery) takes it back.
func (in *Incoming) Commit() error {
	man := in.man
	old := man.Checkpoint
	man.State, man.Checkpoint, man.DisposableVolumes = StateCreated, "", nil
	if err := in.m.store.save(man); err != nil {
		return in.fail(err)
	}
	if old != "" {
		os.Remove(old)
	}
	in.done = true
	return nil
}

// Undo takes back a committed pod: a dock whose source could not learn
// that the pod runs here (and so resumes its own copy) removes it.
func (in *Incoming) Undo() error {
	in.done = false
	return in.Abort()
}

// Abort undoes everything Receive and Start did.
func (in *Incoming) Abort() error {
	if in.done {
		return nil
	}
	in.done = true
	if in.fromCheckpoint {
		return in.m.backToCheckpointed(in.cleanupCtx, in.man)
	}
	return in.m.teardown(in.cleanupCtx, in.man)
}

// Close releases the pod's lock and the staging directory; a restore that
// neither started nor aborted is aborted.
func (in *Incoming) Close() error {
	err := in.Abort()
	os.RemoveAll(in.staging)
	if in.postCopy != nil {
		in.postCopy.Unlock()
		in.postCopy = nil
	}
	if in.lock != nil {
		in.lock.Unlock()
		in.lock = nil
	}
	return err
}

// backToCheckpointed undoes a failed restore of a checkpointed pod. It
// is cleanup: it runs to the end even when ctx is cancelled.
func (m *Manager) backToCheckpointed(ctx context.Context, man *Manifest) error {
	ctx = context.WithoutCancel(ctx)
	err := errors.Join(
		m.store.runtime().Destroy(ctx, man.ID, man.CgroupPath),
		virtns.DetachVeth(ctx, man.Endpoint),
		virtns.DeleteNetNS(ctx, m.netnsPath(man)),
		virtns.Firewall{}.RemovePod(ctx, man.ID),
		m.rootfs(man).Unmount(ctx),
	)
	if err != nil {
		return err
	}
	man.State = StateCheckpointed
	return m.store.save(man)
}

func portForwards(ports []Port) []virtns.PortForward {
	var fwd []virtns.PortForward
	for _, p := range ports {
		fwd = append(fwd, virtns.PortForward{HostPort: p.HostPort, PodPort: p.PodPort, Protocol: p.Protocol})
	}
	return fwd
}
