package vesselpod

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/names"
	"github.com/podctl/podctl/internal/statedir"
	"github.com/podctl/podctl/wasm/prepare"
	"github.com/podctl/podctl/wasm/snapshot"
)

// CreateOptions are the parts of a vessel pod that are not its module.
type CreateOptions struct {
	Name string
	// Module is the module's path, for display.
	Module string
	// Args follow argv[0], which is the module's base name.
	Args []string
	Env  []string
	Dirs []DirMap
	// MemoryLimit caps linear memory, in bytes (0: none below 4 GiB).
	MemoryLimit int64
}

// Argv is the guest's argv: the module's base name, then o.Args.
func (o CreateOptions) Argv() []string {
	return append([]string{path.Base(filepath.ToSlash(o.Module))}, o.Args...)
}

// Create prepares module (once per content, see prepare.Cache), gives the
// pod private copies of its preopened directories and starts its
// supervisor. On failure nothing of the pod is left.
func (s Store) Create(ctx context.Context, o CreateOptions, module []byte) (_ *Manifest, err error) {
	prepared, err := s.Prepare(ctx, o, module)
	if err != nil {
		return nil, err
	}
	m, unlock, err := s.Install(o, prepared)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := s.launch(ctx, m, ""); err != nil {
		os.RemoveAll(s.podDir(m.Spec.Name))
		return nil, err
	}
	return m, nil
}

// Prepare checks o and prepares module through this store's cache.
func (s Store) Prepare(ctx context.Context, o CreateOptions, module []byte) (*prepare.Prepared, error) {
	if err := names.Validate(o.Name); err != nil {
		return nil, err
	}
	for _, d := range o.Dirs {
		if !path.IsAbs(d.Guest) || path.Clean(d.Guest) != d.Guest {
			return nil, errdefs.New(errdefs.InvalidArgument, "invalid --dir guest path %q: want a clean absolute path", d.Guest)
		}
		if st, err := os.Stat(d.Host); err != nil || !st.IsDir() {
			return nil, errdefs.New(errdefs.InvalidArgument, "invalid --dir %s: not a directory", d.Host)
		}
	}
	prepared, err := s.cache().Prepare(ctx, module)
	if err != nil {
		return nil, errdefs.New(errdefs.InvalidArgument, "prepare %s: %v", o.Module, err)
	}
	return prepared, nil
}

// Install makes a vessel pod's directory, ready for a supervisor to start
// its guest: the prepared module (stored in this store's cache), the
// manifest and private copies of the preopened directories. The pod is
// recorded as creating, and Install returns with
// its operation lock held: the caller starts the supervisor (launch, or a
// pod housing the vessel), calls Launched, then unlock. On failure
// nothing of the pod is left.
func (s Store) Install(o CreateOptions, prepared *prepare.Prepared) (_ *Manifest, unlock func(), err error) {
	if _, err := s.cache().Store(prepared.Bytes); err != nil {
		return nil, nil, err
	}
	dir, unlockDir, err := s.makePodDir(o.Name)
	if err != nil {
		return nil, nil, err
	}
	// (A failure returns a nil unlock: the pod's lock is released here.)
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
			unlockDir()
		}
	}()
	m := &Manifest{
		Kind: Kind, ID: newID(), State: StateCreating, Created: time.Now().UTC(),
		SourceHash: hashHex(prepared.SourceHash), ModuleHash: hashHex(prepared.Hash),
		Spec: Spec{Name: o.Name, Module: o.Module, Args: o.Argv(), Env: o.Env, Dirs: o.Dirs, MemoryLimit: o.MemoryLimit},
	}
	for i, d := range o.Dirs {
		if err := copyTree(d.Host, s.preopenDir(o.Name, i)); err != nil {
			return nil, nil, fmt.Errorf("vessel pod %s: copy %s: %w", o.Name, d.Host, err)
		}
	}
	if err := s.save(m); err != nil {
		return nil, nil, err
	}
	return m, unlockDir, nil
}

// launch starts a pod's supervisor (resuming from the snapshot file
// resume, if set) and records the pod as started (see Launched).
func (s Store) launch(ctx context.Context, m *Manifest, resume string) error {
	if err := s.startSupervisor(ctx, m.Spec.Name, resume); err != nil {
		return err
	}
	m.State = m.launchedState()
	return s.save(m)
}

// Launched records that a pod's supervisor was started: the pod is
// created, or prepared if a migration session brought it (its guest is
// held until the source decides).
func (s Store) Launched(name string) error {
	m, err := s.Load(name)
	if err != nil {
		return err
	}
	m.State = m.launchedState()
	return s.save(m)
}

// launchedState is the state of a pod whose supervisor was started.
func (m *Manifest) launchedState() State {
	if m.Session != "" {
		return StatePrepared
	}
	return StateCreated
}

// held reports whether a supervisor starting for the pod holds its guest:
// a received pod that its source has not decided on.
func (m *Manifest) held() bool {
	return m.Session != "" && (m.State == StateCreating || m.State == StatePrepared)
}

// makePodDir creates a new pod's directory and takes its operation lock.
func (s Store) makePodDir(name string) (string, func(), error) {
	if s.nameTaken(name) {
		return "", nil, errdefs.New(errdefs.AlreadyExists, "a pod named %s already exists", name)
	}
	dir := s.podDir(name)
	if err := os.MkdirAll(s.dir(), 0o700); err != nil {
		return "", nil, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", nil, errdefs.New(errdefs.AlreadyExists, "a pod named %s already exists", name)
		}
		return "", nil, err
	}
	l, err := s.lock(name)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	if err := os.Mkdir(filepath.Join(dir, dirsDir), 0o700); err != nil {
		l.Unlock()
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, l.Unlock, nil
}

func (s Store) preopenDir(name string, i int) string {
	return filepath.Join(s.podDir(name), dirsDir, fmt.Sprint(i))
}

// CheckpointOptions tune Checkpoint.
type CheckpointOptions struct {
	// Output is where the snapshot goes; "" keeps it in the pod, which
	// becomes "checkpointed".
	Output string
	// LeaveRunning lets the guest run on once its state is captured.
	LeaveRunning bool
}

// CheckpointResult reports a checkpoint.
type CheckpointResult struct {
	Snapshot string        `json:"snapshot"`
	Bytes    int64         `json:"bytes"`
	Timings  StopTimings   `json:"timings"`
	Total    time.Duration `json:"totalNs"`
}

// Checkpoint stops a running vessel pod's guest at its next poll point and
// writes its portable snapshot (module included). The guest then runs on
// (LeaveRunning) or ends; any failure lets it run on.
func (s Store) Checkpoint(ctx context.Context, name string, o CheckpointOptions) (*CheckpointResult, error) {
	start := time.Now()
	l, err := s.lock(name)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	m, err := s.requireRunning(name)
	if err != nil {
		return nil, err
	}
	// The supervisor writes in the pod's directory; a snapshot for
	// elsewhere is moved there once written.
	file := checkpointFile
	if o.Output != "" {
		file = outputFile
	}
	out := filepath.Join(s.podDir(name), file)
	c, err := s.dial(name)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rep, err := c.stop(ctx, file, true, false)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", name, err)
	}
	if o.Output != "" {
		if err := moveFile(out, o.Output); err != nil {
			c.do(ctx, request{Op: opContinue})
			return nil, fmt.Errorf("checkpoint %s: %w", name, err)
		}
		out = o.Output
	}
	res := &CheckpointResult{Snapshot: out, Bytes: rep.Bytes, Timings: rep.StopTimings}
	if o.LeaveRunning {
		if err := c.do(ctx, request{Op: opContinue}); err != nil {
			return nil, fmt.Errorf("checkpoint %s: resume: %w", name, err)
		}
		res.Total = time.Since(start)
		return res, nil
	}
	if err := c.do(ctx, request{Op: opEnd}); err != nil {
		return nil, fmt.Errorf("checkpoint %s: end the guest: %w", name, err)
	}
	if o.Output == "" {
		m.State = StateCheckpointed
		if err := s.save(m); err != nil {
			return nil, err
		}
	}
	res.Total = time.Since(start)
	return res, nil
}

func (s Store) requireRunning(name string) (*Manifest, error) {
	st, err := s.Status(name)
	if err != nil {
		return nil, err
	}
	if st.Status != "running" {
		return nil, errdefs.New(errdefs.NotRunning, "vessel pod %s is not running (%s)", name, st.Status)
	}
	return st.Manifest, nil
}

// IsSnapshotFile reports whether path holds a portable snapshot (as
// opposed to a native pod's archive).
func IsSnapshotFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return snapshot.HasMagic(f)
}

// RestoreOptions tune Restore and Receive.
type RestoreOptions struct {
	// Name names the restored pod (default: the name recorded in the
	// snapshot).
	Name string
	// MemoryLimit caps the restored guest's linear memory, in bytes: a
	// snapshot with more is refused (0: no limit below 4 GiB).
	MemoryLimit int64
	// Encoded, if set, is the encoding the snapshot was decoded from (see
	// DecodeSnapshot). The pod's supervisor then resumes from a copy of
	// it, which spares encoding the snapshot again: for a large memory,
	// most of a restore's time.
	Encoded []byte

	// MemoryBudget, if set, is where decoding the snapshot and encoding
	// it again (when Encoded is nil) reserve the memory they allocate,
	// before they allocate it: a dock's, shared by all its receives.
	MemoryBudget Reserver
	// MaxDecodeBytes bounds what decoding the snapshot may allocate for
	// it (snapshot.Limits.MaxTotalBytes; 0: the limits' own total).
	MaxDecodeBytes int64
	// DiskBudget, if set, is where Unpack reserves the space of the
	// snapshot file it writes for the supervisor, before writing it.
	DiskBudget Reserver
	// Session, if set, is the migration that brings the snapshot: the
	// pod is then received prepared, its guest held until its source
	// decides (Store.Decide).
	Session string
}

// Reserver reserves a resource (bytes of memory or disk) from a budget
// shared with other work, or fails if it cannot: internal/budget's
// Lease, in a dock.
type Reserver = snapshot.Reserver

// maxKeptEncoding is the largest snapshot encoding DecodeSnapshot keeps.
// Keeping it costs memory besides the decoded snapshot; above this size,
// a restore encodes the snapshot again instead.
const maxKeptEncoding = 512 << 20

// limits are the decoding limits for a snapshot restored with o.
func (o RestoreOptions) limits() snapshot.Limits {
	l := snapshot.DefaultLimits()
	if o.MemoryLimit > 0 {
		l.MaxMemoryBytes = o.MemoryLimit
	}
	if o.MaxDecodeBytes > 0 {
		l.MaxTotalBytes = min(l.MaxTotalBytes, o.MaxDecodeBytes)
	}
	return l
}

// Restore restarts the checkpointed vessel pod name from its own
// checkpoint. (A snapshot file is restored with SnapshotFile.)
func (s Store) Restore(ctx context.Context, name string, o RestoreOptions) (*Manifest, time.Duration, error) {
	start := time.Now()
	m, err := s.Load(name)
	if err != nil {
		return nil, 0, errdefs.New(errdefs.NotFound, "restore: no snapshot file or checkpointed pod named %s", name)
	}
	if m.State != StateCheckpointed {
		return nil, 0, errdefs.New(errdefs.Conflict, "restore: vessel pod %s is not checkpointed", name)
	}
	if o.Name != "" && o.Name != name {
		return nil, 0, errdefs.New(errdefs.InvalidArgument, "restore: --name cannot rename a checkpointed pod; restore it from its snapshot file instead")
	}
	snap, _, err := ReadSnapshot(filepath.Join(s.podDir(name), checkpointFile), o)
	if err != nil {
		return nil, 0, err
	}
	m, err = s.restoreInPlace(ctx, name, snap)
	return m, time.Since(start), err
}

// ReadSnapshot decodes the snapshot file within o's limits, like
// DecodeSnapshot. The file's size is no claim: the bytes it keeps are
// allocated at once.
func ReadSnapshot(file string, o RestoreOptions) (*snapshot.Snapshot, []byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	snap, encoded, err := decodeSnapshot(f, newKeptBytes(maxKeptEncoding, size, size, o.MemoryBudget), o)
	if err != nil {
		return nil, nil, fmt.Errorf("restore %s: %w", file, err)
	}
	return snap, encoded, nil
}

// DecodeSnapshot decodes a snapshot from r within o's limits. It also
// returns the bytes it decoded it from, unless they exceed 512 MiB (then
// nil), for RestoreOptions.Encoded. size, if positive, is the length r
// is said to have (a peer's Content-Length): a claim, of which only
// keptPresize bytes are allocated before any arrive. The bytes are kept
// in a buffer that grows as they arrive, by doubling, and whose last
// growth is to exactly size, so that a snapshot of the size announced
// ends in one allocation of its size (after copies of half as much in
// all, which cost a few milliseconds for a snapshot of tens of MiB).
//
// With o.MemoryBudget, everything it allocates is reserved there first:
// its read buffer, the decoder's buffers and what it charges against
// MaxTotalBytes (snapshot.DecodeReserving), and each growth of the kept
// bytes.
func DecodeSnapshot(r io.Reader, size int64, o RestoreOptions) (*snapshot.Snapshot, []byte, error) {
	return decodeSnapshot(r, newKeptBytes(maxKeptEncoding, size, keptPresize, o.MemoryBudget), o)
}

// readBuffer is the size of decodeSnapshot's read buffer.
const readBuffer = 1 << 20

// DecodeBuffers is what DecodeSnapshot reserves from a memory budget
// besides what it charges against MaxDecodeBytes and the bytes it keeps:
// its read buffer and the decoder's own (snapshot.DecodeBuffers).
const DecodeBuffers = readBuffer + snapshot.DecodeBuffers

// decodeSnapshot decodes a snapshot from r within o's limits, keeping
// the bytes it decodes it from in kept.
func decodeSnapshot(r io.Reader, kept *keptBytes, o RestoreOptions) (*snapshot.Snapshot, []byte, error) {
	if o.MemoryBudget != nil {
		if err := o.MemoryBudget.Reserve(readBuffer); err != nil {
			return nil, nil, fmt.Errorf("snapshot: %w", err)
		}
	}
	snap, err := snapshot.DecodeReserving(bufio.NewReaderSize(io.TeeReader(r, kept), readBuffer), o.limits(), o.MemoryBudget)
	if err != nil {
		return nil, nil, err
	}
	return snap, kept.bytes(), nil
}

// keptPresize is the most DecodeSnapshot allocates for the bytes it keeps
// before they arrive.
const keptPresize = 1 << 20

// keptGrowMin is the least a keptBytes grows by.
const keptGrowMin = 64 << 10

// keptBytes keeps what is written to it, up to max bytes; past that, it
// drops what it kept and keeps nothing more. It grows as bytes arrive, to
// at most twice what it holds: the size it expects only says where to
// stop growing. With a Reserver, it reserves each growth there first
// (the growth of its capacity: the buffer it replaces is garbage), and
// fails the write that needs it if the reservation is refused.
type keptBytes struct {
	buf     []byte
	max     int
	size    int64 // the bytes expected, 0 if unknown
	presize int64 // the least it allocates for bytes expected
	over    bool
	res     Reserver
	charged int64 // capacity reserved from res
}

// newKeptBytes returns a keptBytes for size bytes (unknown if not
// positive), which keeps none if size exceeds limit. It allocates up to
// presize bytes at once, when the first bytes arrive. res, if not nil,
// is where it reserves what it allocates.
func newKeptBytes(limit int, size, presize int64, res Reserver) *keptBytes {
	k := &keptBytes{max: limit, size: size, res: res}
	switch {
	case size > int64(limit):
		k.over = true
	case size > 0 && presize > 0:
		k.presize = min(size, presize)
	}
	return k
}

func (k *keptBytes) Write(p []byte) (int, error) {
	switch need := len(k.buf) + len(p); {
	case k.over:
	case need > k.max:
		k.over = true
		k.buf = nil
	default:
		if need > cap(k.buf) {
			if err := k.grow(need); err != nil {
				return 0, err
			}
		}
		k.buf = append(k.buf, p...)
	}
	return len(p), nil
}

// grow makes room for need bytes: it doubles the buffer (at least), or
// grows it to exactly the size expected if that is less.
func (k *keptBytes) grow(need int) error {
	c := max(need, 2*cap(k.buf), keptGrowMin, int(k.presize))
	if k.size >= int64(need) && k.size < int64(c) {
		c = int(k.size)
	}
	c = min(c, k.max)
	if k.res != nil && int64(c) > k.charged {
		if err := k.res.Reserve(int64(c) - k.charged); err != nil {
			return fmt.Errorf("keep the snapshot's encoding: %w", err)
		}
		k.charged = int64(c)
	}
	grown := make([]byte, len(k.buf), c)
	copy(grown, k.buf)
	k.buf = grown
	return nil
}

// bytes returns what was kept, nil if too much was written.
func (k *keptBytes) bytes() []byte {
	if k.over {
		return nil
	}
	return k.buf
}

// restoreInPlace restarts a checkpointed vessel pod from its own snapshot.
func (s Store) restoreInPlace(ctx context.Context, name string, snap *snapshot.Snapshot) (*Manifest, error) {
	l, err := s.lock(name)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	m, err := s.Load(name)
	if err != nil {
		return nil, err
	}
	if m.State != StateCheckpointed {
		return nil, errdefs.New(errdefs.Conflict, "restore: vessel pod %s is not checkpointed", name)
	}
	if err := s.resetForResume(name, snap); err != nil {
		return nil, err
	}
	if err := s.launch(ctx, m, filepath.Join(s.podDir(name), checkpointFile)); err != nil {
		return nil, err
	}
	os.Remove(filepath.Join(s.podDir(name), checkpointFile))
	return m, nil
}

// Receive makes a new vessel pod from a snapshot and resumes it (held, if
// o.Session is set): the module comes from the snapshot or this host's
// cache, the preopened directories and logs from the snapshot. On
// failure nothing of the pod is left.
func (s Store) Receive(ctx context.Context, snap *snapshot.Snapshot, o RestoreOptions) (*Manifest, error) {
	if err := o.Check(snap); err != nil {
		return nil, err
	}
	prepared, err := s.ModuleFor(snap, o)
	if err != nil {
		return nil, err
	}
	if err := s.Supersede(ctx, o.name(snap), snap.Meta, s.Discard); err != nil {
		return nil, err
	}
	m, file, unlock, err := s.Unpack(snap, o, prepared)
	if err != nil {
		return nil, err
	}
	defer unlock()
	defer os.Remove(file)
	if err := s.launch(ctx, m, file); err != nil {
		os.RemoveAll(s.podDir(m.Spec.Name))
		return nil, err
	}
	return m, nil
}

// Unpack makes a new vessel pod's directory from a snapshot whose module
// is prepared (see ModuleFor): the module (stored in this store's cache),
// the manifest, the preopened directories and logs, and the snapshot
// (without the module) in the file resume, for a supervisor to resume.
// Like Install, it returns with the pod recorded as creating and its
// operation lock held; the caller starts the supervisor, calls Launched,
// then unlock. On failure nothing of the pod is left.
func (s Store) Unpack(snap *snapshot.Snapshot, o RestoreOptions, prepared *prepare.Prepared) (_ *Manifest, resume string, unlock func(), err error) {
	if err := o.Check(snap); err != nil {
		return nil, "", nil, err
	}
	name := o.name(snap)
	if _, err := s.cache().Store(prepared.Bytes); err != nil {
		return nil, "", nil, err
	}
	dir, unlockDir, err := s.makePodDir(name)
	if err != nil {
		return nil, "", nil, err
	}
	// (A failure returns a nil unlock: the pod's lock is released here.)
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
			unlockDir()
		}
	}()
	m := &Manifest{
		Kind: Kind, ID: newID(), State: StateCreating, Created: time.Now().UTC(),
		ModuleHash: hashHex(prepared.Hash), Session: o.Session, SourceID: snap.Meta[MetaID],
		Spec: Spec{Name: name, Module: snap.Meta[MetaModule], Args: snap.WASI.Args, Env: snap.WASI.Env, MemoryLimit: o.MemoryLimit},
	}
	for _, p := range snap.WASI.Preopens {
		m.Spec.Dirs = append(m.Spec.Dirs, DirMap{Guest: p.GuestPath})
	}
	if err := s.save(m); err != nil {
		return nil, "", nil, err
	}
	if err := s.resetForResume(name, snap); err != nil {
		return nil, "", nil, err
	}
	// The supervisor resumes from a file, which it reads once, at once,
	// and which is then removed, so it is not synced to disk: the
	// snapshot's encoding as the caller has it, or else the snapshot
	// encoded again, without the module (which is in the cache now).
	// Either is reserved first (encoding holds the compressed snapshot
	// in memory before it writes it).
	resume = s.ResumePath(name)
	if o.Encoded != nil {
		if err := reserve(o.DiskBudget, int64(len(o.Encoded)), "write the snapshot for its supervisor"); err != nil {
			return nil, "", nil, err
		}
		err = os.WriteFile(resume, o.Encoded, 0o600)
	} else {
		n := encodedBound(snap)
		if err := reserve(o.MemoryBudget, n+encodeBuffers, "encode the snapshot for its supervisor"); err != nil {
			return nil, "", nil, err
		}
		if err := reserve(o.DiskBudget, n, "write the snapshot for its supervisor"); err != nil {
			return nil, "", nil, err
		}
		err = writeSnapshot(resume, snap, false, false)
	}
	if err != nil {
		return nil, "", nil, err
	}
	return m, resume, unlockDir, nil
}

// reserve reserves n bytes from res, if not nil, for what.
func reserve(res Reserver, n int64, what string) error {
	if res == nil {
		return nil
	}
	if err := res.Reserve(n); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// encodeBuffers bounds what snapshot.Encode allocates besides the
// compressed snapshot: the zstd encoder's window (4 MiB) and tables, a
// chunk, the writer's buffer.
const encodeBuffers = 16 << 20

// encodedBound bounds the size of snap encoded without its module: its
// body is at most its memory, file data, logs and strings, plus a few
// bytes per entry (bounded here by 64 per string), and zstd adds at most
// a few bytes per 128 KiB block to data it cannot compress.
func encodedBound(snap *snapshot.Snapshot) int64 {
	n := int64(len(snap.Memory)) + int64(len(snap.WASI.Stdout)) + int64(len(snap.WASI.Stderr)) + 1<<20
	strs := func(list ...string) {
		for _, s := range list {
			n += int64(len(s)) + 64
		}
	}
	for k, v := range snap.Meta {
		strs(k, v)
	}
	strs(snap.WASI.Args...)
	strs(snap.WASI.Env...)
	for _, p := range snap.WASI.Preopens {
		strs(p.GuestPath)
		for _, f := range p.Files {
			strs(f.Path)
			n += int64(len(f.Data))
		}
	}
	for _, fd := range snap.WASI.FDs {
		strs(fd.Path)
	}
	n += 16 * int64(len(snap.Globals))
	return n + n/1024
}

// Check refuses a snapshot that o's memory limit or its pod name rule out.
func (o RestoreOptions) Check(snap *snapshot.Snapshot) error {
	if o.MemoryLimit > 0 && int64(len(snap.Memory)) > o.MemoryLimit {
		return errdefs.New(errdefs.InvalidArgument, "snapshot: its %d MiB of memory exceed the limit of %d MiB", len(snap.Memory)>>20, o.MemoryLimit>>20)
	}
	return names.Validate(o.name(snap))
}

// name is the name of the pod restored from snap.
func (o RestoreOptions) name(snap *snapshot.Snapshot) string {
	if o.Name != "" {
		return o.Name
	}
	return snap.Meta[MetaName]
}

// ModuleFor finds a snapshot's prepared module: in the snapshot (then
// cached) or in this host's cache, whose copy it reads into memory after
// reserving the room from o.MemoryBudget.
func (s Store) ModuleFor(snap *snapshot.Snapshot, o RestoreOptions) (*prepare.Prepared, error) {
	if snap.Module != nil {
		p, err := s.cache().Store(snap.Module)
		if err != nil {
			return nil, err
		}
		if p.Hash != snap.ModuleHash {
			return nil, errdefs.New(errdefs.InvalidArgument, "snapshot: its module does not match its module hash")
		}
		return p, nil
	}
	if err := reserve(o.MemoryBudget, s.cache().Bytes(snap.ModuleHash), "read its module from the cache"); err != nil {
		return nil, err
	}
	p, err := s.cache().Load(snap.ModuleHash)
	if err != nil {
		return nil, errdefs.New(errdefs.NotFound, "snapshot: module sha256:%x is not in this host's cache, and the snapshot does not carry it", snap.ModuleHash[:8])
	}
	return p, nil
}

// HasModule reports whether this host's cache holds the prepared module
// (and records it as used now: the peer that asks relies on it).
func (s Store) HasModule(hash [32]byte) bool { return s.cache().Has(hash) }

// resetForResume empties a pod's preopened directories and writes the
// snapshot's logs, ready for a supervisor to resume it (the WASI layer
// fills the directories).
func (s Store) resetForResume(name string, snap *snapshot.Snapshot) error {
	dirs := filepath.Join(s.podDir(name), dirsDir)
	if err := os.RemoveAll(dirs); err != nil {
		return err
	}
	if err := os.Mkdir(dirs, 0o700); err != nil {
		return err
	}
	for i := range snap.WASI.Preopens {
		if err := os.Mkdir(s.preopenDir(name, i), 0o700); err != nil {
			return err
		}
	}
	for file, data := range map[string][]byte{stdoutFile: snap.WASI.Stdout, stderrFile: snap.WASI.Stderr} {
		if err := statedir.WriteFileAtomic(filepath.Join(s.podDir(name), file), data, 0o600); err != nil {
			return err
		}
	}
	os.Remove(filepath.Join(s.podDir(name), exitFile))
	return nil
}

// Remove removes a vessel pod, ending its guest first (force is required
// to end one that runs, or that a migration holds stopped).
func (s Store) Remove(ctx context.Context, name string, force bool) error {
	l, err := s.lock(name)
	if err != nil {
		return err
	}
	defer l.Unlock()
	st, err := s.Status(name)
	if err != nil {
		return err
	}
	// A live supervisor runs the guest, or holds it stopped in the middle
	// of a migration (prepared, handed over): it must end, or it would
	// outlive its directory.
	if s.running(name) {
		if !force {
			return errdefs.New(errdefs.Conflict, "vessel pod %s is %s: stop it first or use --force", name, st.Status)
		}
		if err := s.end(ctx, name); err != nil {
			return err
		}
	}
	return os.RemoveAll(s.podDir(name))
}

// Stop ends a running vessel pod's guest (it is not checkpointed).
func (s Store) Stop(ctx context.Context, name string) error {
	l, err := s.lock(name)
	if err != nil {
		return err
	}
	defer l.Unlock()
	if _, err := s.requireRunning(name); err != nil {
		return err
	}
	return s.end(ctx, name)
}

// end asks the supervisor to end the guest and waits for it to be gone.
func (s Store) end(ctx context.Context, name string) error {
	c, err := s.dial(name)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.do(ctx, request{Op: opEnd}); err != nil {
		return fmt.Errorf("vessel pod %s: end: %w", name, err)
	}
	return s.waitGone(ctx, name)
}

// waitGone polls until the supervisor has exited.
func (s Store) waitGone(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for s.running(name) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("vessel pod %s: supervisor did not exit: %w", name, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// copyTree copies the directory src to dst (created), refusing anything
// but directories, regular files and symlinks: what a vessel can take
// along.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			return copyFile(p, target, info.Mode().Perm())
		default:
			return fmt.Errorf("%s: a %s cannot move with a vessel", p, info.Mode().Type())
		}
	})
}

// moveFile moves the file src to dst, copying it (and syncing the copy)
// when they are on different filesystems.
func moveFile(src, dst string) error {
	err := os.Rename(src, dst)
	if !errors.Is(err, syscall.EXDEV) {
		return err
	}
	defer os.Remove(src)
	tmp := dst + ".tmp"
	if err := copyFile(src, tmp, 0o600); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ResumePath is the snapshot file Unpack writes for the pod name.
func (s Store) ResumePath(name string) string { return filepath.Join(s.podDir(name), checkpointFile) }
