package pod

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/internal/statedir"
	"github.com/podctl/podctl/virtns"
)

// Options configure a Manager.
type Options struct {
	// Root is the state directory (DefaultRoot when empty).
	Root string
	// Bridge and Subnet configure the default network when it is first
	// created ("" for DefaultBridge and DefaultSubnet).
	Bridge, Subnet string
	// Uplink is a host interface to enslave to the default network's
	// bridge when it is created (see virtns.Network.Uplink).
	Uplink string
	// InitBinary is the program pods use as their init (when empty,
	// virtns.DefaultInit of the running executable).
	InitBinary string
	// Hide lists more host directories that no pod may see, besides the
	// state root: podctl's PKI directories (see virtns.Rootfs.Hide).
	Hide []string
	// Handovers, if set, settles pods that a migration handed over to a
	// dock that had not confirmed when its podctl died: recovery asks
	// it (see resolveHandovers). Without it they stay frozen.
	Handovers HandoverResolver
}

// Manager runs the pod lifecycle against one state root. It is safe to use
// from several processes at once: every change is made under the store's
// locks, and an operation interrupted by a crash is finished by the next
// Manager that notices it.
type Manager struct {
	opts  Options
	store Store
}

// NewManager returns a Manager for opts.Root. It does not touch the system.
func NewManager(opts Options) (*Manager, error) {
	if opts.Root == "" {
		opts.Root = DefaultRoot
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("state root %s: %w", opts.Root, err)
	}
	opts.Root = root
	if opts.InitBinary == "" {
		self, err := virtns.SelfBinary()
		if err != nil {
			return nil, fmt.Errorf("find podctl binary: %w", err)
		}
		opts.InitBinary = virtns.DefaultInit(self)
	}
	return &Manager{opts: opts, store: Store{Root: root}}, nil
}

func (m *Manager) rootfs(man *Manifest) virtns.Rootfs {
	image := man.Spec.Image
	if image == ImageHost || image == "" {
		image = "/"
	}
	return virtns.Rootfs{Image: image, PodDir: m.store.podDir(man.Spec.Name), Hostname: man.hostname(), Hide: append([]string{m.opts.Root}, m.opts.Hide...)}
}

// env is the environment of the pod's processes: defaults overridden by
// the pod's --env.
func env(spec Spec) []string {
	vars := []string{"PATH=" + virtns.DefaultPath, "HOME=/root", "HOSTNAME=" + spec.Name, "TERM=xterm"}
	for _, kv := range spec.Env {
		k, _, _ := strings.Cut(kv, "=")
		vars = setEnv(vars, k, kv)
	}
	return vars
}

func setEnv(vars []string, key, kv string) []string {
	for i, v := range vars {
		if strings.HasPrefix(v, key+"=") {
			vars[i] = kv
			return vars
		}
	}
	return append(vars, kv)
}

func lookupEnv(vars []string, key string) string {
	for _, v := range vars {
		if strings.HasPrefix(v, key+"=") {
			return v[len(key)+1:]
		}
	}
	return ""
}

// Create creates and starts a pod. When it returns without error the pod's
// command is running; when it returns an error nothing of the pod is left.
func (m *Manager) Create(ctx context.Context, spec Spec) (*Manifest, error) {
	return m.CreateWith(ctx, spec, nil)
}

// CreateWith is Create with seed, if not nil, called with the host path
// of the pod's mounted root filesystem before its payload starts, to put
// files there: they land in the pod's writable layer.
func (m *Manager) CreateWith(ctx context.Context, spec Spec, seed func(rootfs string) error) (*Manifest, error) {
	if spec.Image == "" {
		spec.Image = ImageHost
	}
	if err := spec.validate(); err != nil {
		return nil, err
	}
	if spec.Image != ImageHost {
		if err := virtns.ValidateImage(spec.Image); err != nil {
			return nil, err
		}
		if err := virtns.CheckStatic(m.opts.InitBinary); err != nil {
			return nil, err
		}
	}
	for _, p := range spec.Ports {
		if err := probeHostPort(p); err != nil {
			return nil, err
		}
	}
	for _, v := range spec.HostVolumes() {
		if fi, err := os.Stat(v.Source); err != nil || !fi.IsDir() {
			return nil, errdefs.New(errdefs.InvalidArgument, "invalid volume %s: %s is not a directory on this host", v, v.Source)
		}
	}
	man, podLock, err := m.reserve(ctx, spec, reservation{makeVolumes: true})
	if err != nil {
		return nil, err
	}
	defer podLock.Unlock()
	failpoint.Hit(ctx, "create:reserved")
	if err := m.build(ctx, man, seed); err != nil {
		if terr := m.teardown(ctx, man); terr != nil {
			return nil, fmt.Errorf("%w (and rolling back failed: %v)", err, terr)
		}
		return nil, err
	}
	return man, nil
}

// reservation is what a restored pod brings along and must keep.
type reservation struct {
	// IP, when valid, is the address the pod must have.
	IP netip.Addr
	// Hostname, when set, is the pod's hostname.
	Hostname string
	// makeVolumes makes the pod's named volumes that do not exist, empty:
	// a created pod's. A restored pod's come from its archive
	// (placeVolumes).
	makeVolumes bool
}

// reserve claims, under the state lock, everything that must be unique:
// the name, an address (want.IP if set) and the published ports, and
// records the pod as creating. It returns with the pod's operation lock
// held.
func (m *Manager) reserve(ctx context.Context, spec Spec, want reservation) (*Manifest, *statedir.Lock, error) {
	lk, err := m.store.lock(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer lk.Unlock()
	if err := m.recoverLocked(ctx, spec.Name); err != nil {
		return nil, nil, err
	}
	dir := m.store.podDir(spec.Name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, nil, errdefs.New(errdefs.AlreadyExists, "pod %s already exists", spec.Name)
		}
		return nil, nil, fmt.Errorf("create pod %s: %w", spec.Name, err)
	}
	podLock, err := m.store.tryLockPod(spec.Name)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("create pod %s: %w", spec.Name, err)
	}
	man := &Manifest{Version: ManifestVersion, ID: newID(), Spec: spec, State: StateCreating, CreatedAt: time.Now().UTC()}
	if want.Hostname != spec.Name {
		man.Hostname = want.Hostname
	}
	man.CgroupPath = "/podctl/" + man.ID
	fail := func(err error) (*Manifest, *statedir.Lock, error) {
		m.teardownResources(ctx, man)
		m.forgetLocked(ctx, man)
		podLock.Unlock()
		return nil, nil, err
	}
	if err := m.store.save(man); err != nil {
		return fail(err)
	}
	if man.Network, err = m.ensureNetworkLocked(ctx, spec.Network); err != nil {
		return fail(err)
	}
	stale := func(owner string) bool { return !m.store.podIDExists(owner) }
	for _, p := range spec.Ports {
		ok, holder, err := m.store.portLeases().Take(portKey(p), man.ID, stale)
		if err != nil {
			return fail(err)
		}
		if !ok {
			return fail(errdefs.New(errdefs.Conflict, "port %d/%s is already published by another pod (%s)", p.HostPort, p.Protocol, m.podNameByID(holder)))
		}
	}
	failpoint.Hit(ctx, "create:ports-leased")
	ip := want.IP
	if ip.IsValid() {
		err = m.takeIP(man, ip, stale)
	} else {
		ip, err = man.Network.AllocateIP(ctx, m.store.ipLeases(man.Network.Name), man.ID, stale)
	}
	if err != nil {
		return fail(err)
	}
	man.Endpoint = virtns.NewEndpoint(ip)
	if want.makeVolumes {
		for _, v := range spec.NamedVolumes() {
			created, err := m.createVolumeLocked(v)
			if err != nil {
				return fail(err)
			}
			if created {
				man.DisposableVolumes = append(man.DisposableVolumes, v)
			}
		}
	}
	if err := m.store.save(man); err != nil {
		return fail(err)
	}
	return man, podLock, nil
}

// takeIP leases a restored pod's own address.
func (m *Manager) takeIP(man *Manifest, ip netip.Addr, stale func(string) bool) error {
	n := man.Network
	if !n.Subnet.Contains(ip) || ip == n.Gateway || ip == n.Subnet.Addr() {
		return errdefs.New(errdefs.Conflict, "address %s does not fit network %s (%s) on this host", ip, n.Name, n.Subnet)
	}
	ok, holder, err := m.store.ipLeases(n.Name).Take(ip.String(), man.ID, stale)
	if err != nil {
		return err
	}
	if !ok {
		return errdefs.New(errdefs.Conflict, "address %s is already taken on this host (by %s)", ip, m.podNameByID(holder))
	}
	return nil
}

func portKey(p Port) string { return fmt.Sprintf("%s-%d", p.Protocol, p.HostPort) }

func (m *Manager) podNameByID(id string) string {
	if name, _ := m.store.nameOfID(id); name != "" {
		return name
	}
	return "pod " + id
}

// probeHostPort checks that no host process listens on a port about to be
// published, since DNAT would silently steal its traffic.
func probeHostPort(p Port) error {
	addr := fmt.Sprintf(":%d", p.HostPort)
	var c io.Closer
	var err error
	if p.Protocol == "udp" {
		c, err = net.ListenPacket("udp4", addr)
	} else {
		c, err = net.Listen("tcp4", addr)
	}
	if err != nil {
		return errdefs.New(errdefs.Conflict, "host port %d/%s is in use: %v", p.HostPort, p.Protocol, err)
	}
	return c.Close()
}

// build makes the pod's kernel objects and starts it.
func (m *Manager) build(ctx context.Context, man *Manifest, seed func(rootfs string) error) error {
	rootfs := m.rootfs(man)
	if err := rootfs.Mount(ctx); err != nil {
		return err
	}
	failpoint.Hit(ctx, "create:mounted")
	rootfsPath := filepath.Join(rootfs.PodDir, virtns.RootfsDir)
	if man.Spec.Vessel != nil {
		// The mount point of the podctl binary, and what LookPath finds.
		if err := os.WriteFile(filepath.Join(rootfsPath, virtns.PodctlPath), nil, 0o755); err != nil {
			return fmt.Errorf("create pod %s: %w", man.Spec.Name, err)
		}
	}
	if seed != nil {
		if err := seed(rootfsPath); err != nil {
			return fmt.Errorf("create pod %s: %w", man.Spec.Name, err)
		}
	}
	vars := env(man.Spec)
	workdir := man.Spec.Workdir
	if workdir == "" {
		workdir = "/"
	}
	path, err := virtns.LookPath(rootfsPath, man.Spec.Command[0], lookupEnv(vars, "PATH"), workdir)
	if err != nil {
		return err
	}
	netnsPath := m.netnsPath(man)
	if err := virtns.CreateNetNS(ctx, netnsPath); err != nil {
		return err
	}
	if err := man.Network.PlumbPod(ctx, netnsPath, man.Endpoint, true); err != nil {
		return err
	}
	failpoint.Hit(ctx, "create:attached")
	if err := (virtns.Firewall{}).AddPorts(ctx, man.ID, man.Endpoint.IP, portForwards(man.Spec.Ports)); err != nil {
		return err
	}
	cfg, err := m.podConfig(man)
	if err != nil {
		return err
	}
	cfg.Path, cfg.Args, cfg.Env, cfg.Cwd = path, man.Spec.Command, vars, workdir
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err = m.store.runtime().Start(startCtx, cfg); err != nil {
		return fmt.Errorf("create pod %s: %w", man.Spec.Name, err)
	}
	failpoint.Hit(ctx, "create:started")
	man.State, man.DisposableVolumes = StateCreated, nil
	return m.store.save(man)
}

// teardown removes everything a pod has, in the order that never strands
// a resource: processes and cgroup, network, filesystem, then (under the
// state lock) leases and the pod's record. Every step tolerates its
// resource being gone already, so teardown can finish an earlier one that
// was interrupted. The caller holds the pod's operation lock.
//
// teardown is cleanup: it runs to the end even when ctx is cancelled
// (a Ctrl-C that interrupts a create or an rm must not leave half of a
// pod behind), waiting at most cleanupTimeout for the state lock.
func (m *Manager) teardown(ctx context.Context, man *Manifest) error {
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	if err := m.teardownResources(ctx, man); err != nil {
		return err
	}
	failpoint.Hit(ctx, "rm:torn-down")
	lk, err := m.store.lock(ctx)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	return m.forgetLocked(ctx, man)
}

// cleanupTimeout bounds the waits of cleanup that outlives its caller's
// context (see cleanupContext).
const cleanupTimeout = time.Minute

// cleanupContext is the context of cleanup that must finish even when
// ctx is cancelled: it keeps ctx's values but not its cancellation, and
// ends after cleanupTimeout.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// teardownResources removes a pod's kernel objects and files. It is
// cleanup: it runs to the end even when ctx is cancelled.
func (m *Manager) teardownResources(ctx context.Context, man *Manifest) error {
	ctx = context.WithoutCancel(ctx)
	if man.State != StateRemoving {
		man.State = StateRemoving
		if err := m.store.save(man); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	failpoint.Hit(ctx, "rm:marked")
	rootfs := m.rootfs(man)
	return errors.Join(
		m.store.runtime().Destroy(ctx, man.ID, man.CgroupPath),
		virtns.DetachVeth(ctx, man.Endpoint),
		virtns.DeleteNetNS(ctx, m.netnsPath(man)),
		virtns.Firewall{}.RemovePod(ctx, man.ID),
		rootfs.Remove(ctx),
	)
}

// forgetLocked releases a torn-down pod's leases and deletes its record.
// The caller holds the state lock.
func (m *Manager) forgetLocked(ctx context.Context, man *Manifest) error {
	var errs []error
	for _, p := range man.Spec.Ports {
		errs = append(errs, m.store.portLeases().Release(portKey(p), man.ID))
	}
	if man.Endpoint.IP.IsValid() {
		errs = append(errs, m.store.ipLeases(man.Network.Name).Release(man.Endpoint.IP.String(), man.ID))
	}
	errs = append(errs, m.releaseNetworkLocked(ctx, man.Network))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.RemoveAll(m.store.podDir(man.Spec.Name)); err != nil {
		return fmt.Errorf("remove pod %s: %w", man.Spec.Name, err)
	}
	return m.removeUnusedVolumesLocked(man.DisposableVolumes, man.Spec.Name)
}

// recoverLocked finishes what a dead podctl left half done: a pod in a
// transitional state (or a pod directory without a manifest) whose
// operation lock is free is torn down. With only != "", just that pod is
// looked at. The caller holds the state lock.
func (m *Manager) recoverLocked(ctx context.Context, only string) error {
	var leftovers []error
	names := []string{only}
	if only == "" {
		var err error
		if names, err = m.store.names(); err != nil {
			return err
		}
	}
	if only == "" {
		if err := errors.Join(m.removeStaleTemp(), m.removeStaleVolumeTemp()); err != nil {
			return err
		}
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := os.Stat(m.store.podDir(name)); err != nil {
			continue
		}
		man, err := m.store.Load(name)
		if err != nil && !errdefs.Is(err, errdefs.NotFound) {
			return err
		}
		if man != nil && man.State == StateCreated && virtns.IsFrozen(ctx, man.CgroupPath) {
			// A checkpoint or migration died with the pod frozen and cut
			// off: if nobody is working on it, let it run again.
			if pl, err := m.store.tryLockPod(name); err == nil {
				err = errors.Join(virtns.Firewall{}.UnlockPod(ctx, man.ID), virtns.Thaw(ctx, man.CgroupPath))
				pl.Unlock()
				if err != nil {
					leftovers = append(leftovers, fmt.Errorf("recover pod %s: %w", name, err))
				}
			}
			continue
		}
		if man != nil && man.PagesPending && (man.State == StateCreated || man.State == StatePrepared) {
			// A post-copy whose dock died cannot end: the pod lacks
			// memory for good. Its source runs its own copy again.
			if lost, err := m.store.tryLockPostCopy(name); err == nil {
				pl, err := m.store.tryLockPod(name)
				if err == nil {
					err = m.teardownResources(ctx, man)
					if err == nil {
						err = m.forgetLocked(ctx, man)
					}
					pl.Unlock()
				}
				lost.Unlock()
				if err != nil {
					leftovers = append(leftovers, fmt.Errorf("recover pod %s: %w", name, err))
				}
				continue
			}
		}
		if man != nil && (man.State == StateCreated || man.State == StateCheckpointed || man.State == StatePrepared || man.State == StateHandedOver) {
			continue // (a migration waiting to commit waits for the other side)
		}
		pl, err := m.store.tryLockPod(name)
		if err != nil {
			continue // someone is working on it
		}
		if man != nil && man.State == StateRestoring {
			// Its archive is intact: undo the restore, keep the pod.
			err = m.backToCheckpointed(ctx, man)
		} else if man == nil {
			// Crashed between creating the directory and writing the
			// manifest: nothing else exists yet.
			err = os.RemoveAll(m.store.podDir(name))
		} else if err = m.teardownResources(ctx, man); err == nil {
			err = m.forgetLocked(ctx, man)
		}
		pl.Unlock()
		if err != nil {
			leftovers = append(leftovers, fmt.Errorf("recover pod %s: %w", name, err))
		}
	}
	if only == "" {
		if err := m.releaseStaleLeases(); err != nil {
			leftovers = append(leftovers, err)
		}
	}
	if leftovers != nil {
		return &LeftoverError{Pods: leftovers}
	}
	return nil
}

// releaseStaleLeases releases the addresses and ports leased to pods that
// do not exist. A podctl that dies between taking a lease and recording
// its pod's address leaves one, which no teardown knows of (Take would
// reclaim it once the key is wanted again; recovery leaves the state root
// as it was instead). The caller holds the state lock, under which every
// lease is taken.
func (m *Manager) releaseStaleLeases() error {
	dirs, err := filepath.Glob(filepath.Join(m.opts.Root, "leases", "*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, dir := range dirs {
		leases := statedir.Leases{Dir: dir}
		all, err := leases.All()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for key, owner := range all {
			if !m.store.podIDExists(owner) {
				errs = append(errs, leases.Release(key, owner))
			}
		}
	}
	return errors.Join(errs...)
}

// LeftoverError reports pods that a dead podctl left half done and that
// recovery could not finish (a file it cannot remove, say). Each keeps
// its record, in its transitional state, and with it its name, address
// and ports, so that nothing new collides with what is left of it: it is
// quarantined. Every later recovery tries again. Other pods are not held
// up by it: listing pods, and a dock starting, go on (see List).
type LeftoverError struct {
	// Pods has one error per pod, naming it.
	Pods []error
}

// Leftovers returns the pods' errors: docks recognize a recovery that
// left leftovers, and still serve, by this method.
func (e *LeftoverError) Leftovers() []error { return e.Pods }

func (e *LeftoverError) Error() string {
	return fmt.Sprintf("%d pod(s) left over from a crash cannot be cleaned up: %v", len(e.Pods), errors.Join(e.Pods...))
}

// removeStaleTemp deletes scratch directories (ROOT/tmp/KIND-ID-*) that
// no running operation uses: their pod is gone, or its lock is free.
func (m *Manager) removeStaleTemp() error {
	dir := filepath.Join(m.opts.Root, "tmp")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range ents {
		parts := strings.SplitN(e.Name(), "-", 3)
		if len(parts) != 3 {
			continue
		}
		name, err := m.store.nameOfID(parts[1])
		if err != nil {
			return err
		}
		var pl *statedir.Lock
		if name != "" {
			if pl, err = m.store.tryLockPod(name); err != nil {
				continue // in use
			}
		}
		// A CRIU that worked there for a podctl that died may live on.
		err = virtns.KillProcessesIn(context.Background(), filepath.Join(dir, e.Name()))
		if err == nil {
			err = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
		if pl != nil {
			pl.Unlock()
		}
		if err != nil {
			return fmt.Errorf("remove stale %s: %w", e.Name(), err)
		}
	}
	return nil
}

// Recover finishes or rolls back whatever a podctl that died left half
// done (see recoverLocked). Docks call it when they start. Pods it
// cannot finish are reported as a *LeftoverError.
func (m *Manager) Recover(ctx context.Context) error {
	lk, err := m.store.lock(ctx)
	if err != nil {
		return err
	}
	err = m.recoverLocked(ctx, "")
	lk.Unlock()
	if herr := m.resolveHandovers(ctx); herr != nil {
		return errors.Join(err, &LeftoverError{Pods: []error{herr}})
	}
	return err
}

// Remove deletes a pod and everything it has. A running pod is refused
// unless force is set, in which case it is killed.
func (m *Manager) Remove(ctx context.Context, name string, force bool) error {
	man, pl, err := m.loadLocked(ctx, name)
	if err != nil {
		return err
	}
	defer pl.Unlock()
	if !force && man.State == StateCreated {
		st, _, err := m.store.runtime().State(ctx, man.ID)
		if err != nil {
			return err
		}
		if st == virtns.StatusRunning || st == virtns.StatusPaused {
			return errdefs.New(errdefs.Conflict, "pod %s is running: stop it first or use rm -f", name)
		}
	}
	return m.teardown(ctx, man)
}

// RemoveWithVolumes is Remove, followed by the removal of the pod's named
// volumes that no other pod mounts.
func (m *Manager) RemoveWithVolumes(ctx context.Context, name string, force bool) error {
	man, err := m.store.Load(name)
	if err != nil {
		return err
	}
	if err := m.Remove(ctx, name, force); err != nil {
		return err
	}
	lk, err := m.store.lock(ctx)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	return m.removeUnusedVolumesLocked(man.Spec.NamedVolumes(), "")
}

// loadLocked loads a pod's manifest with its operation lock held.
func (m *Manager) loadLocked(ctx context.Context, name string) (*Manifest, *statedir.Lock, error) {
	if _, err := m.store.Load(name); err != nil {
		return nil, nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	pl, err := m.store.lockPod(wctx, name)
	if err != nil {
		return nil, nil, err
	}
	man, err := m.store.Load(name) // it may have changed while we waited
	if err != nil {
		pl.Unlock()
		return nil, nil, err
	}
	return man, pl, nil
}

// Stop sends SIGTERM to the pod and SIGKILL after timeout.
func (m *Manager) Stop(ctx context.Context, name string, timeout time.Duration) error {
	man, pl, err := m.loadLocked(ctx, name)
	if err != nil {
		return err
	}
	defer pl.Unlock()
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return m.store.runtime().Stop(sctx, man.ID)
}

// Status is a pod as `podctl ps` and `podctl inspect` show it.
type Status struct {
	Manifest
	// Status is "running", "exited", "creating", "removing" or "paused".
	Status string `json:"status"`
	// ExitCode is the payload's exit status once it has exited.
	ExitCode *int `json:"exitCode,omitempty"`
	// InitPID is the host PID of the pod's init while it runs.
	InitPID int `json:"initPid,omitempty"`
	// PIDs are the host PIDs of all the pod's processes (Inspect only).
	PIDs []int `json:"pids,omitempty"`
	// Dir is the pod's directory.
	Dir string `json:"dir"`
}

// Manifest reads a pod's recorded manifest, without asking the kernel how
// the pod is (see Inspect).
func (m *Manager) Manifest(name string) (*Manifest, error) { return m.store.Load(name) }

// Manifests reads every pod's recorded manifest, by name, skipping any it
// cannot read: unlike List it recovers nothing and asks the kernel
// nothing, for callers on a migration's critical path.
func (m *Manager) Manifests() ([]*Manifest, error) {
	names, err := m.store.names()
	if err != nil {
		return nil, err
	}
	var out []*Manifest
	for _, n := range names {
		if man, err := m.store.Load(n); err == nil {
			out = append(out, man)
		}
	}
	return out, nil
}

// Inspect returns a pod's status.
func (m *Manager) Inspect(ctx context.Context, name string) (*Status, error) {
	man, err := m.store.Load(name)
	if err != nil {
		return nil, err
	}
	st, err := m.status(ctx, man)
	if err != nil || st.InitPID == 0 {
		return st, err
	}
	st.PIDs, err = m.store.runtime().Processes(ctx, man.ID)
	return st, err
}

func (m *Manager) status(ctx context.Context, man *Manifest) (*Status, error) {
	st := &Status{Manifest: *man, Status: string(man.State), Dir: m.store.podDir(man.Spec.Name)}
	if man.State != StateCreated {
		return st, nil
	}
	rs, pid, err := m.store.runtime().State(ctx, man.ID)
	if err != nil {
		return nil, err
	}
	switch rs {
	case virtns.StatusRunning, virtns.StatusPaused:
		st.Status, st.InitPID = string(rs), pid
	default:
		st.Status = "exited"
		if b, err := os.ReadFile(m.upperPath(man, virtns.ExitPath)); err == nil {
			if code, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				st.ExitCode = &code
			}
		}
	}
	return st, nil
}

// podConfig is what the runtime needs to start or restore the pod: its
// root filesystem, init binary (recorded in man), cgroup, limits and
// network namespace; the command is the caller's to add.
func (m *Manager) podConfig(man *Manifest) (virtns.PodConfig, error) {
	initBin, err := m.initBinary(man)
	if err != nil {
		return virtns.PodConfig{}, err
	}
	cfg := virtns.PodConfig{
		ID: man.ID, Hostname: man.hostname(), InitBinary: initBin,
		Rootfs:     filepath.Join(m.store.podDir(man.Spec.Name), virtns.RootfsDir),
		CgroupPath: man.CgroupPath, MemoryLimit: man.Spec.MemoryLimit, PidsLimit: man.Spec.PidsLimit,
		NetNSPath: m.netnsPath(man), Privileged: man.Spec.Privileged,
	}
	if man.Spec.Vessel != nil {
		podctl, err := m.podctlBinary(man)
		if err != nil {
			return virtns.PodConfig{}, err
		}
		cfg.Binds = append(cfg.Binds, virtns.Bind{Source: podctl, Destination: virtns.PodctlPath})
	}
	for _, v := range man.Spec.Volumes {
		src := v.Source
		if v.Name != "" {
			src = m.store.volumeData(v.Name)
		}
		cfg.Binds = append(cfg.Binds, virtns.Bind{Source: src, Destination: v.Destination, Writable: !v.ReadOnly})
	}
	return cfg, nil
}

// netnsPath is where the pod's network namespace is mounted.
func (m *Manager) netnsPath(man *Manifest) string {
	return filepath.Join(m.store.podDir(man.Spec.Name), "netns")
}

// PodPath is the host path of the in-pod path inPod: in the pod's
// mounted root filesystem while it is mounted (so that file locks and
// Unix sockets are the pod's own), in its writable layer otherwise.
func (m *Manager) PodPath(man *Manifest, inPod string) string {
	mounted := filepath.Join(m.store.podDir(man.Spec.Name), virtns.RootfsDir)
	if _, err := os.Stat(filepath.Join(mounted, virtns.InPodDir)); err == nil {
		return filepath.Join(mounted, inPod)
	}
	return m.upperPath(man, inPod)
}

// upperPath is the host path of an in-pod path in the writable layer.
func (m *Manager) upperPath(man *Manifest, inPod string) string {
	return filepath.Join(m.store.podDir(man.Spec.Name), virtns.UpperDir, inPod)
}

// List returns every pod, after finishing any operation a dead podctl left
// half done, so that it never lists a pod that does not exist.
func (m *Manager) List(ctx context.Context) ([]*Status, error) {
	lk, err := m.store.lock(ctx)
	if err != nil {
		return nil, err
	}
	err = m.recoverLocked(ctx, "")
	lk.Unlock()
	if _, ok := errors.AsType[*LeftoverError](err); err != nil && !ok {
		return nil, err
	}
	// A dock that does not answer leaves its pods handed over: ps
	// shows them so.
	_ = m.resolveHandovers(ctx)
	names, err := m.store.names()
	if err != nil {
		return nil, err
	}
	var out []*Status
	for _, n := range names {
		man, err := m.store.Load(n)
		if errdefs.Is(err, errdefs.NotFound) {
			continue // removed meanwhile, or being created right now
		}
		if err != nil {
			return nil, err
		}
		st, err := m.status(ctx, man)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// ExecOptions describe a command to run in a pod.
type ExecOptions struct {
	Command        []string
	Env            []string
	Workdir        string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	TTY            bool
}

// Exec runs a command inside a running pod and returns its exit status.
func (m *Manager) Exec(ctx context.Context, name string, o ExecOptions) (int, error) {
	man, err := m.store.Load(name)
	if err != nil {
		return 0, err
	}
	if len(o.Command) == 0 {
		return 0, errdefs.New(errdefs.Usage, "missing command: podctl exec POD -- CMD [ARGS...]")
	}
	st, err := m.status(ctx, man)
	if err != nil {
		return 0, err
	}
	if st.Status != string(virtns.StatusRunning) {
		return 0, errdefs.New(errdefs.NotRunning, "pod %s is not running (%s)", name, st.Status)
	}
	vars := env(man.Spec)
	for _, kv := range o.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return 0, errdefs.New(errdefs.InvalidArgument, "invalid environment variable %q: want KEY=VALUE", kv)
		}
		vars = setEnv(vars, k, kv)
	}
	workdir := o.Workdir
	if workdir == "" {
		workdir = man.Spec.Workdir
	}
	if workdir == "" {
		workdir = "/"
	}
	rootfs := filepath.Join(m.store.podDir(name), virtns.RootfsDir)
	path, err := virtns.LookPath(rootfs, o.Command[0], lookupEnv(vars, "PATH"), workdir)
	if err != nil {
		return 0, err
	}
	return m.store.runtime().Exec(ctx, man.ID, virtns.ExecConfig{
		Path: path, Args: o.Command, Env: vars, Cwd: workdir,
		Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, TTY: o.TTY,
	})
}

// Logs copies a pod's log to w. With follow it keeps copying what the pod
// writes until the pod exits or ctx is done.
func (m *Manager) Logs(ctx context.Context, name string, follow bool, w io.Writer) error {
	man, err := m.store.Load(name)
	if err != nil {
		return err
	}
	f, err := os.Open(m.upperPath(man, virtns.LogPath))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("logs %s: %w", name, err)
	}
	defer f.Close()
	for {
		if _, err := io.Copy(w, f); err != nil {
			return fmt.Errorf("logs %s: %w", name, err)
		}
		if !follow {
			return nil
		}
		st, err := m.status(ctx, man)
		if err != nil || (st.Status != "running" && st.Status != "paused" && st.Status != string(StateCreating)) {
			_, err := io.Copy(w, f) // what was written before it exited
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}
