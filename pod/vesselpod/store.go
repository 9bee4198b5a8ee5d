// Package vesselpod is the lifecycle of vessel pods: pods whose payload is
// a WebAssembly (WASI preview 1) module run by package wasm/vessel, which
// can be checkpointed into a portable snapshot and restored or migrated
// to a host of any CPU architecture.
//
// A vessel pod lives in ROOT/vessels/NAME:
//
//	manifest.json   the Manifest
//	op.lock         held by whoever operates on the pod (checkpoint, rm, ...)
//	run.lock        held by the supervisor while it lives
//	control.sock    the supervisor's control socket
//	dirs/N          the private copy of the Nth preopened directory
//	stdout.log      the guest's standard output
//	stderr.log      the guest's standard error
//	exit            the guest's exit status, once it has exited
//	checkpoint.snap the snapshot of a checkpointed vessel
//
// Each running vessel has a supervisor process (`podctl _vessel`, see
// Supervise), like a pod's init: podctl commands come and go, the vessel
// stays. The supervisor needs neither root nor any kernel feature beyond a
// Unix socket, so vessel pods work wherever podctl builds, under qemu-user
// on other ISAs included. Their isolation is WebAssembly's: a guest reaches
// nothing but its memory and its preopened directories (WASI preview 1
// has no sockets).
//
// Vessel pods and native pods (package pod) share one name space per root.
// The package does not import package pod, which needs Linux and cgo; it
// knows pod's directory layout (ROOT/pods/NAME) for that one check only.
package vesselpod

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/names"
	"github.com/podctl/podctl/internal/statedir"
	"github.com/podctl/podctl/pod/handle"
	"github.com/podctl/podctl/wasm/prepare"
)

// Kind is the Manifest.Kind of every vessel pod.
const Kind = "vessel"

// DirMap maps a host directory to the guest path it is preopened at.
type DirMap struct {
	// Host is the directory whose contents the vessel starts with ("" on
	// a restored vessel: the contents came with it).
	Host string `json:"host,omitempty"`
	// Guest is the absolute path the guest opens it by.
	Guest string `json:"guest"`
}

// Spec is what a vessel pod is created from.
type Spec struct {
	Name string `json:"name"`
	// Module is the module's path at creation, for display.
	Module string `json:"module"`
	// Args is the guest's argv, argv[0] included.
	Args []string `json:"args"`
	// Env entries are "K=V".
	Env  []string `json:"env,omitempty"`
	Dirs []DirMap `json:"dirs,omitempty"`
	// MemoryLimit caps the guest's linear memory, in bytes (0: the
	// wasm32 maximum, 4 GiB).
	MemoryLimit int64 `json:"memoryLimit,omitempty"`
}

// State is a vessel pod's recorded state. Whether its guest still runs is
// found out, not recorded (see Store.Status).
type State string

// Vessel pod states.
const (
	// StateCreating: files are being set up; no guest yet.
	StateCreating State = "creating"
	// StateCreated: a supervisor was started (it may have exited since).
	StateCreated State = "created"
	// StateCheckpointed: stopped, its state in checkpoint.snap.
	StateCheckpointed State = "checkpointed"
	// StatePrepared: received by a migration, its guest resumed but held
	// where it stopped, until its source decides (Store.Decide).
	StatePrepared State = "prepared"
	// StateHandedOver: migrated, its guest stopped here for good unless
	// the dock it went to says it never had it (Outgoing.HandOver).
	StateHandedOver State = "handed-over"
)

// Manifest is a vessel pod's record.
type Manifest struct {
	Kind    string    `json:"kind"`
	ID      string    `json:"id"`
	Spec    Spec      `json:"spec"`
	State   State     `json:"state"`
	Created time.Time `json:"created"`
	// SourceHash and ModuleHash are the SHA-256 of the module as given
	// and of the prepared module, in hex.
	SourceHash string `json:"sourceHash,omitempty"`
	ModuleHash string `json:"moduleHash"`
	// Session is the migration that brought the pod here, and SourceID
	// the ID of the pod it came from (see Store.Decide).
	Session  string `json:"session,omitempty"`
	SourceID string `json:"sourceID,omitempty"`
	// Handover is where a handed-over pod went (StateHandedOver).
	Handover *handle.Handover `json:"handover,omitempty"`
}

// Status is a vessel pod as `podctl ps` shows it.
type Status struct {
	*Manifest
	// Status is "running", "exited", "checkpointed", "creating", or, in
	// the middle of a migration, "prepared" or "handed-over".
	Status string `json:"status"`
	// ExitCode is the guest's exit status, once it has exited.
	ExitCode *int   `json:"exitCode,omitempty"`
	Dir      string `json:"dir"`
}

// Store keeps the vessel pods of one podctl state root.
type Store struct {
	// Root is podctl's state root.
	Root string
	// Self is the command that starts podctl itself, for supervisors:
	// [os.Executable()] when empty. A podctl run by qemu-user without
	// binfmt must be told the emulator too (see SelfFromEnv).
	Self []string
	// WasmOpt is Binaryen's wasm-opt ("" finds it on PATH).
	WasmOpt string
	// Handovers, if set, settles the pods a migration handed over to a
	// dock whose confirmation never came (see Recover). Without it they
	// stay stopped.
	Handovers handle.HandoverResolver
}

// SelfEnv names the environment variable that overrides Store.Self: the
// command, split on spaces, that runs this podctl binary (for example
// "qemu-aarch64-static /opt/podctl/podctl-arm64" under qemu-user).
const SelfEnv = "PODCTL_SELF"

// SelfFromEnv returns the command that runs this podctl binary: SelfEnv's
// value if set, otherwise the running executable.
func SelfFromEnv() ([]string, error) {
	if v := strings.Fields(os.Getenv(SelfEnv)); len(v) > 0 {
		return v, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find podctl binary: %w", err)
	}
	return []string{exe}, nil
}

func (s Store) dir() string               { return filepath.Join(s.Root, "vessels") }
func (s Store) podDir(name string) string { return filepath.Join(s.dir(), name) }
func (s Store) cache() prepare.Cache {
	return prepare.Cache{Dir: filepath.Join(s.Root, "wasm", "modules"), WasmOpt: s.WasmOpt}
}

// Files of a vessel pod's directory.
const (
	manifestFile   = "manifest.json"
	opLockFile     = "op.lock"
	runLockFile    = "run.lock"
	controlSocket  = "control.sock"
	dirsDir        = "dirs"
	stdoutFile     = "stdout.log"
	stderrFile     = "stderr.log"
	exitFile       = "exit"
	checkpointFile = "checkpoint.snap"
	migrateFile    = ".migrate.snap"
	outputFile     = ".output.snap"
)

// Exists reports whether root has a vessel pod called name.
func Exists(root, name string) bool {
	_, err := os.Stat(filepath.Join(root, "vessels", name, manifestFile))
	return err == nil
}

// nameTaken reports whether name is used by a vessel or a native pod.
func (s Store) nameTaken(name string) bool {
	if _, err := os.Stat(filepath.Join(s.Root, "pods", name)); err == nil {
		return true
	}
	_, err := os.Stat(s.podDir(name))
	return err == nil
}

// Load reads a vessel pod's manifest.
func (s Store) Load(name string) (*Manifest, error) {
	if names.Validate(name) != nil {
		return nil, errdefs.New(errdefs.NotFound, "no such vessel pod: %s", name)
	}
	var m Manifest
	err := statedir.ReadJSON(filepath.Join(s.podDir(name), manifestFile), &m)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.New(errdefs.NotFound, "no such vessel pod: %s", name)
	}
	if err != nil {
		return nil, fmt.Errorf("vessel pod %s: %w", name, err)
	}
	return &m, nil
}

func (s Store) save(m *Manifest) error {
	return statedir.WriteJSON(filepath.Join(s.podDir(m.Spec.Name), manifestFile), m, 0o600)
}

// lock takes a vessel pod's operation lock.
func (s Store) lock(name string) (*statedir.Lock, error) {
	l, err := statedir.TryLock(filepath.Join(s.podDir(name), opLockFile))
	if errors.Is(err, statedir.ErrLocked) {
		return nil, errdefs.New(errdefs.Busy, "vessel pod %s is busy (another podctl command is operating on it)", name)
	}
	return l, err
}

// running reports whether the pod's supervisor is alive: it holds
// run.lock for as long as it lives.
func (s Store) running(name string) bool {
	l, err := statedir.TryLock(filepath.Join(s.podDir(name), runLockFile))
	if err != nil {
		return errors.Is(err, statedir.ErrLocked)
	}
	l.Unlock()
	return false
}

// Status returns a vessel pod's manifest and its live status.
func (s Store) Status(name string) (*Status, error) {
	m, err := s.Load(name)
	if err != nil {
		return nil, err
	}
	st := &Status{Manifest: m, Dir: s.podDir(name)}
	switch {
	case m.State == StateCheckpointed:
		st.Status = string(StateCheckpointed)
	case m.State == StateCreating, m.State == StatePrepared, m.State == StateHandedOver:
		st.Status = string(m.State)
	case s.running(name):
		st.Status = "running"
	default:
		st.Status = "exited"
		if b, err := os.ReadFile(filepath.Join(st.Dir, exitFile)); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				st.ExitCode = &n
			}
		}
	}
	return st, nil
}

// List returns every vessel pod, by name.
func (s Store) List(ctx context.Context) ([]*Status, error) {
	// A dock that does not answer leaves its vessels handed over: the
	// list shows them so.
	_ = s.settleStopped(ctx)
	ents, err := os.ReadDir(s.dir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Status
	for _, e := range ents {
		if !e.IsDir() || names.Validate(e.Name()) != nil {
			continue
		}
		st, err := s.Status(e.Name())
		if err != nil {
			continue // half created or removed meanwhile
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out, nil
}

// LogPaths returns the files holding a vessel pod's stdout and stderr.
func (s Store) LogPaths(name string) (stdout, stderr string, err error) {
	if _, err := s.Load(name); err != nil {
		return "", "", err
	}
	d := s.podDir(name)
	return filepath.Join(d, stdoutFile), filepath.Join(d, stderrFile), nil
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func hashHex(h [32]byte) string { return hex.EncodeToString(h[:]) }

func parseHash(s string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("bad module hash %q", s)
	}
	copy(h[:], b)
	return h, nil
}
