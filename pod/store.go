package pod

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/names"
	"github.com/podctl/podctl/internal/statedir"
	"github.com/podctl/podctl/virtns"
)

// DefaultRoot is where podctl keeps its state unless --root or PODCTL_ROOT
// says otherwise.
const DefaultRoot = "/var/lib/podctl"

// State is the lifecycle state recorded in a pod's manifest. Creating and
// Removing are transitional: a manifest left in one of them by a podctl
// that died is finished (removed) by the next podctl that sees it.
type State string

// Manifest states.
const (
	StateCreating State = "creating"
	StateCreated  State = "created"
	StateRemoving State = "removing"
	// StateCheckpointed is a pod stopped by `podctl checkpoint`: its
	// name, address and ports stay reserved and its archive is in its
	// directory, for `podctl restore NAME`.
	StateCheckpointed State = "checkpointed"
	// StateRestoring is a checkpointed pod being restored. A podctl that
	// dies meanwhile leaves it to be put back to checkpointed.
	StateRestoring State = "restoring"
	// StatePrepared and StateHandedOver are the two sides of a migration
	// waiting to commit: see handover.go.
)

// ManifestVersion is the version of the manifest format.
const ManifestVersion = 1

// Manifest is what podctl records about one pod, in
// ROOT/pods/NAME/manifest.json. It is always replaced atomically.
type Manifest struct {
	Version   int             `json:"version"`
	ID        string          `json:"id"`
	Spec      Spec            `json:"spec"`
	State     State           `json:"state"`
	CreatedAt time.Time       `json:"createdAt"`
	Network   virtns.Network  `json:"network"`
	Endpoint  virtns.Endpoint `json:"endpoint"`
	// CgroupPath is the pod's cgroup relative to each hierarchy's root.
	CgroupPath string `json:"cgroupPath"`
	// Hostname is the pod's hostname when it differs from its name (a
	// pod restored under a new name keeps the hostname it had).
	Hostname string `json:"hostname,omitempty"`
	// Init is the name of the copy of the init binary (see
	// Manager.initBinary) that the pod's init maps. A restore on this
	// host maps the same copy, since CRIU checks the file it restores a
	// mapping from.
	Init string `json:"init,omitempty"`
	// Podctl is, for a pod housing a vessel, the name of the copy of the
	// podctl binary its supervisor maps (see Manager.stableCopy).
	Podctl string `json:"podctl,omitempty"`
	// Checkpoint is the archive of a checkpointed pod.
	Checkpoint string `json:"checkpoint,omitempty"`
	// Session is the migration session that brought the pod here, and
	// SourceID its ID on the host it came from (see Incoming.Prepare).
	Session  string `json:"session,omitempty"`
	SourceID string `json:"sourceId,omitempty"`
	// Handover is where a handed-over pod went (StateHandedOver).
	Handover *Handover `json:"handover,omitempty"`
	// PagesPending is a pod received with post-copy whose memory has not
	// all arrived: it cannot run without it (see Incoming.PagesLost).
	PagesPending bool `json:"pagesPending,omitempty"`
	// DisposableVolumes are named volumes that go when the pod goes
	// (unless another pod mounts them): those its create or restore
	// made, until it runs, so that a failure takes them back; and all of
	// its volumes once it is handed over to another host, where they
	// went with it.
	DisposableVolumes []string `json:"disposableVolumes,omitempty"`
}

// hostname is the pod's hostname.
func (m *Manifest) hostname() string {
	if m.Hostname != "" {
		return m.Hostname
	}
	return m.Spec.Name
}

// Store is podctl's state directory:
//
//	ROOT/lock                   the state lock: held briefly around every change
//	ROOT/pods/NAME/manifest.json
//	ROOT/pods/NAME/lock         held by the command operating on the pod
//	ROOT/pods/NAME/{upper,work,rootfs}   the pod's root filesystem
//	ROOT/networks/NAME.json     networks
//	ROOT/leases/ip-NET/ADDR     address leases (content: pod ID)
//	ROOT/leases/ports/PROTO-N   published host ports (content: pod ID)
//	ROOT/runc/ID                libcontainer's state
type Store struct{ Root string }

func (s Store) podsDir() string           { return filepath.Join(s.Root, "pods") }
func (s Store) podDir(name string) string { return filepath.Join(s.podsDir(), name) }
func (s Store) manifestPath(name string) string {
	return filepath.Join(s.podDir(name), "manifest.json")
}
func (s Store) runtime() virtns.Runtime {
	return virtns.Runtime{StateDir: filepath.Join(s.Root, "runc")}
}
func (s Store) portLeases() statedir.Leases {
	return statedir.Leases{Dir: filepath.Join(s.Root, "leases", "ports")}
}
func (s Store) ipLeases(network string) statedir.Leases {
	return statedir.Leases{Dir: filepath.Join(s.Root, "leases", "ip-"+network)}
}

// lock takes the state lock. Every change to which pods, leases and
// networks exist happens under it.
func (s Store) lock(ctx context.Context) (*statedir.Lock, error) {
	if err := os.MkdirAll(s.podsDir(), 0o700); err != nil {
		return nil, fmt.Errorf("state root %s: %w", s.Root, err)
	}
	return statedir.AcquireLock(ctx, filepath.Join(s.Root, "lock"))
}

// lockPod takes a pod's operation lock, waiting for another command that
// holds it.
func (s Store) lockPod(ctx context.Context, name string) (*statedir.Lock, error) {
	l, err := statedir.AcquireLock(ctx, filepath.Join(s.podDir(name), "lock"))
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return nil, errdefs.New(errdefs.Busy, "pod %s is busy: another podctl command is operating on it", name)
	}
	return l, err
}

// tryLockPod takes a pod's operation lock if it is free. A free lock on a
// pod in a transitional state means the command that was changing it died.
func (s Store) tryLockPod(name string) (*statedir.Lock, error) {
	return statedir.TryLock(filepath.Join(s.podDir(name), "lock"))
}

// tryLockPostCopy takes the lock a dock holds while a pod's memory
// arrives after it started (post-copy): free, it says that dock died.
func (s Store) tryLockPostCopy(name string) (*statedir.Lock, error) {
	return statedir.TryLock(filepath.Join(s.podDir(name), "postcopy.lock"))
}

// Load reads a pod's manifest.
func (s Store) Load(name string) (*Manifest, error) {
	if err := names.Validate(name); err != nil {
		return nil, err
	}
	var m Manifest
	err := statedir.ReadJSON(s.manifestPath(name), &m)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.New(errdefs.NotFound, "no such pod: %s", name)
	}
	if err != nil {
		return nil, fmt.Errorf("load pod %s: %w", name, err)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("load pod %s: unsupported manifest version %d", name, m.Version)
	}
	return &m, nil
}

// save writes a manifest atomically.
func (s Store) save(m *Manifest) error {
	return statedir.WriteJSON(s.manifestPath(m.Spec.Name), m, 0o600)
}

// names lists the pods that have a directory, sorted.
func (s Store) names() ([]string, error) {
	entries, err := os.ReadDir(s.podsDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && names.Validate(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// nameOfID returns the name of the pod with the given ID, or "" when no
// pod has it. An unreadable manifest is an error: the ID may be its.
func (s Store) nameOfID(id string) (string, error) {
	names, err := s.names()
	if err != nil {
		return "", err
	}
	for _, n := range names {
		m, err := s.Load(n)
		if err == nil && m.ID == id {
			return n, nil
		}
		if err != nil && !errdefs.Is(err, errdefs.NotFound) {
			return "", err
		}
	}
	return "", nil
}

// podIDExists reports whether any pod has the given ID. Leases whose owner
// fails this test were left by a podctl that died and are reclaimed.
func (s Store) podIDExists(id string) bool {
	name, err := s.nameOfID(id)
	return name != "" || err != nil // when in doubt, keep the lease
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
