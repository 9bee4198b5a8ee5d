package vesselpod

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/startreport"
	"github.com/podctl/podctl/internal/statedir"
	"github.com/podctl/podctl/wasm/snapshot"
	"github.com/podctl/podctl/wasm/vessel"
	"github.com/podctl/podctl/wasm/wasi"
)

// EngineEnv names the environment variable that, set to "interpreter",
// makes supervisors started from then on run their guest with wazero's
// interpreter even where its compiler exists (for comparisons and tests).
const EngineEnv = "PODCTL_WASM_ENGINE"

// supervisorMemoryLimit is the Go heap size at which a supervisor
// collects garbage (see Supervise); a guest's linear memory is not on it.
const supervisorMemoryLimit = 512 << 20

// HousedEnv names the environment variable that, set to "1", tells a
// supervisor it is the payload of a native pod that houses the vessel
// (see package housed) rather than a process started by Store: it writes
// its start report to the file started in the pod's directory, since
// nobody passed it a pipe, and exits with the guest's exit status, which
// becomes the native pod's.
const HousedEnv = "PODCTL_VESSEL_HOUSED"

// startedFile is where a housed supervisor writes its start report.
const startedFile = "started"

// SupervisorArg is the hidden podctl subcommand (os.Args[1]) that runs a
// vessel pod's supervisor: `podctl _vessel ROOT NAME [SNAPSHOT]`.
const SupervisorArg = "_vessel"

// The supervisor's control protocol: one JSON request per line on
// control.sock, one JSON reply line each.
const (
	// opStop stops the guest at its next poll point and writes its
	// snapshot to Path, relative to the pod's directory (with the module
	// if Module); the guest stays stopped until opContinue or opEnd.
	// Paths are relative because a supervisor housed in a native pod
	// sees the directory at another path than the host (see package
	// housed).
	opStop = "stop"
	// opContinue runs a stopped guest on.
	opContinue = "continue"
	// opEnd ends the guest, stopped or not, and the supervisor.
	opEnd = "end"
)

type request struct {
	Op     string `json:"op"`
	Path   string `json:"path,omitempty"`
	Module bool   `json:"module,omitempty"`
	// Transient says that the snapshot will be read once, at once, and
	// removed (a migration's): it is not synced to disk.
	Transient bool `json:"transient,omitempty"`
}

// StopTimings break a stop down.
type StopTimings struct {
	// Safepoint runs from the request to the guest's call stack being
	// unwound (time-to-safepoint).
	Safepoint time.Duration `json:"safepointNs"`
	// Capture is reading memory, globals and the WASI state (preopened
	// directories included).
	Capture time.Duration `json:"captureNs"`
	// Write is encoding and syncing the snapshot file.
	Write time.Duration `json:"writeNs"`
}

type reply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Kind  int    `json:"kind,omitempty"`
	Bytes int64  `json:"bytes,omitempty"`
	StopTimings
}

// startSupervisor starts a pod's supervisor, detached, and waits until it
// runs the guest (or fails to). resume, if set, is the snapshot file it
// resumes from.
func (s Store) startSupervisor(ctx context.Context, name, resume string) error {
	self := s.Self
	if len(self) == 0 {
		var err error
		if self, err = SelfFromEnv(); err != nil {
			return err
		}
	}
	args := append(self[1:len(self):len(self)], SupervisorArg, s.Root, name)
	if resume != "" {
		args = append(args, resume)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(self[0], args...)
	cmd.ExtraFiles = []*os.File{w}
	detach(cmd)
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("vessel pod %s: start supervisor: %w", name, err)
	}
	go cmd.Wait() // reaps it if this process outlives it
	rctx, cancel := context.WithTimeout(ctx, supervisorStartTimeout)
	defer cancel()
	var rep reply
	if err := startreport.Read(rctx, r, &rep, "supervisor exited before starting the guest"); err != nil {
		cmd.Process.Kill()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("vessel pod %s: supervisor did not start the guest in time", name)
		}
		return fmt.Errorf("vessel pod %s: %w", name, err)
	}
	return rep.err()
}

// supervisorStartTimeout bounds the wait for a supervisor's start report.
const supervisorStartTimeout = 2 * time.Minute

func (r reply) err() error {
	if r.OK {
		return nil
	}
	k := errdefs.Kind(r.Kind)
	if k == 0 {
		k = errdefs.Internal
	}
	return errdefs.New(k, "%s", r.Error)
}

// control is a connection to a supervisor.
type control struct {
	conn net.Conn
	rd   *bufio.Reader
}

func (s Store) dial(name string) (*control, error) {
	sock, done, err := socketPath(filepath.Join(s.podDir(name), controlSocket))
	if err != nil {
		return nil, errdefs.New(errdefs.NotRunning, "vessel pod %s: no supervisor: %v", name, err)
	}
	conn, err := net.Dial("unix", sock)
	done()
	if err != nil {
		return nil, errdefs.New(errdefs.NotRunning, "vessel pod %s: no supervisor: %v", name, err)
	}
	return &control{conn: conn, rd: bufio.NewReader(conn)}, nil
}

func (c *control) Close() error { return c.conn.Close() }

func (c *control) call(ctx context.Context, req request) (reply, error) {
	if d, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(d)
	} else {
		c.conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Now()) })
	defer stop()
	b, _ := json.Marshal(req)
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return reply{}, err
	}
	line, err := c.rd.ReadBytes('\n')
	if err != nil {
		return reply{}, fmt.Errorf("supervisor went away: %w", err)
	}
	var rep reply
	if err := json.Unmarshal(line, &rep); err != nil {
		return reply{}, err
	}
	return rep, rep.err()
}

func (c *control) do(ctx context.Context, req request) error {
	_, err := c.call(ctx, req)
	return err
}

func (c *control) stop(ctx context.Context, path string, module, transient bool) (reply, error) {
	return c.call(ctx, request{Op: opStop, Path: path, Module: module, Transient: transient})
}

// minProcs is the least GOMAXPROCS a supervisor runs with: one P for the
// guest, one for everything else (see Supervise).
const minProcs = 2

// Supervise is the supervisor of a vessel pod: `podctl _vessel ROOT NAME
// [SNAPSHOT]`, started by Store with its start report on fd 3. It runs
// the guest (from SNAPSHOT if given), serves the control socket, and
// records the guest's exit status when it exits. It returns the status
// podctl exits with.
func Supervise(args []string) int {
	housed := os.Getenv(HousedEnv) == "1"
	if len(args) < 2 || len(args) > 3 {
		fmt.Fprintln(os.Stderr, "podctl _vessel: usage: _vessel ROOT NAME [SNAPSHOT]")
		return 2
	}
	// Go's garbage collector stops the world, and a goroutine running
	// compiled guest code stops only when the guest calls into Go: a
	// collection started while the guest spins in a loop without calls
	// (the time-based one, every two minutes, say) would hold every
	// other goroutine, the control socket's included, until the guest
	// calls out, which may be never. So collections happen only when
	// the heap nears a limit: allocation happens inside WASI calls,
	// where the guest is in Go, and a collection started there
	// completes at once.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(supervisorMemoryLimit)
	// For the same reason the guest's goroutine holds its P for as long
	// as it runs compiled code: with one P (a one-CPU machine, a process
	// pinned to one CPU, a cgroup CPU limit) nothing else would ever
	// run, and a stop request would wait on the control socket unread.
	// The control socket needs a P of its own.
	if runtime.GOMAXPROCS(0) < minProcs {
		runtime.GOMAXPROCS(minProcs)
	}
	s := Store{Root: args[0]}
	name := args[1]
	resume := ""
	if len(args) == 3 {
		resume = args[2]
	}
	report := func(r reply) {
		if housed {
			statedir.WriteJSON(filepath.Join(s.podDir(name), startedFile), r, 0o600)
			return
		}
		f := os.NewFile(3, "report")
		writeReply(f, r)
		f.Close()
	}
	sv, err := s.newSupervisor(name, resume)
	if err != nil {
		report(errReply(err))
		return 1
	}
	defer sv.close()
	report(reply{OK: true})
	code := sv.serve()
	if !housed {
		return 0
	}
	return code
}

func errReply(err error) reply {
	return reply{Error: err.Error(), Kind: int(errdefs.KindOf(err))}
}

func writeReply(w io.Writer, r reply) {
	b, _ := json.Marshal(r)
	w.Write(append(b, '\n'))
}

// supervisor runs one vessel pod's guest.
type supervisor struct {
	s              Store
	name, dir      string
	run            *statedir.Lock
	ln             net.Listener
	v              *vessel.Vessel
	stdout, stderr *os.File
	ctx            context.Context
	cancel         context.CancelFunc
}

func (s Store) newSupervisor(name, resume string) (_ *supervisor, err error) {
	dir := s.podDir(name)
	m, err := s.Load(name)
	if err != nil {
		return nil, err
	}
	sv := &supervisor{s: s, name: name, dir: dir}
	sv.ctx, sv.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			sv.close()
		}
	}()
	if sv.run, err = statedir.TryLock(filepath.Join(dir, runLockFile)); err != nil {
		return nil, fmt.Errorf("vessel pod %s: already supervised: %w", name, err)
	}
	hash, err := parseHash(m.ModuleHash)
	if err != nil {
		return nil, err
	}
	prepared, err := s.cache().Load(hash)
	if err != nil {
		return nil, err
	}
	open := func(file string) (*os.File, error) {
		return os.OpenFile(filepath.Join(dir, file), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	}
	if sv.stdout, err = open(stdoutFile); err != nil {
		return nil, err
	}
	if sv.stderr, err = open(stderrFile); err != nil {
		return nil, err
	}
	cfg := vessel.Config{
		Module:      prepared,
		WASI:        wasi.Config{Args: m.Spec.Args, Env: m.Spec.Env, Stdout: sv.stdout, Stderr: sv.stderr},
		Interpreter: os.Getenv(EngineEnv) == "interpreter",
		Held:        resume != "" && m.held(),
	}
	if m.Spec.MemoryLimit > 0 {
		cfg.MemoryLimitPages = uint32(m.Spec.MemoryLimit / snapshot.PageSize)
	}
	for i, d := range m.Spec.Dirs {
		cfg.WASI.Preopens = append(cfg.WASI.Preopens, wasi.PreopenDir{GuestPath: d.Guest, HostDir: s.preopenDir(name, i)})
	}
	sock := filepath.Join(dir, controlSocket)
	os.Remove(sock) // a dead supervisor's
	addr, done, err := socketPath(sock)
	if err != nil {
		return nil, err
	}
	sv.ln, err = net.Listen("unix", addr)
	done()
	if err != nil {
		return nil, err
	}
	if resume == "" {
		sv.v, err = vessel.Start(sv.ctx, cfg)
	} else {
		var snap *snapshot.Snapshot
		if snap, err = readSnapshot(resume); err == nil {
			sv.v, err = vessel.Resume(sv.ctx, cfg, snap)
		}
	}
	if err != nil {
		return nil, err
	}
	return sv, nil
}

// serve answers control requests until the guest exits or is ended. It
// returns the guest's exit status (0 if it was ended).
func (sv *supervisor) serve() int {
	exited := make(chan int, 1)
	go func() {
		code, err := sv.v.Wait(sv.ctx)
		if err != nil {
			fmt.Fprintf(sv.stderr, "podctl: vessel: %v\n", err)
			code = 1
		}
		exited <- code
	}()
	conns := make(chan net.Conn)
	go func() {
		for {
			c, err := sv.ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	for {
		select {
		case code := <-exited:
			statedir.WriteFileAtomic(filepath.Join(sv.dir, exitFile), []byte(strconv.Itoa(code)+"\n"), 0o600)
			return code
		case c := <-conns:
			if sv.handle(c) {
				return 0
			}
		}
	}
}

// handle serves one control connection; it reports whether the guest was
// ended.
func (sv *supervisor) handle(c net.Conn) (ended bool) {
	defer c.Close()
	rd := bufio.NewReader(c)
	for {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			return false
		}
		var req request
		if err := json.Unmarshal(line, &req); err != nil {
			writeReply(c, errReply(err))
			continue
		}
		switch req.Op {
		case opStop:
			writeReply(c, sv.stop(req))
		case opContinue:
			sv.v.Continue()
			writeReply(c, reply{OK: true})
		case opEnd:
			ctx, cancel := context.WithTimeout(sv.ctx, 5*time.Second)
			err := sv.v.Close(ctx)
			cancel()
			if err != nil {
				writeReply(c, errReply(err))
			} else {
				writeReply(c, reply{OK: true})
			}
			return true
		default:
			writeReply(c, errReply(fmt.Errorf("unknown operation %q", req.Op)))
		}
	}
}

// stop stops the guest and writes its snapshot to req.Path.
func (sv *supervisor) stop(req request) reply {
	if !filepath.IsLocal(req.Path) {
		return errReply(fmt.Errorf("stop: snapshot path %q is not local to the pod's directory", req.Path))
	}
	req.Path = filepath.Join(sv.dir, req.Path)
	start := time.Now()
	ctx, cancel := context.WithTimeout(sv.ctx, 30*time.Second)
	defer cancel()
	snap, err := sv.v.Stop(ctx)
	if err != nil {
		return errReply(err)
	}
	var t StopTimings
	t.Safepoint = sv.v.LastSafepoint()
	t.Capture = time.Since(start) - t.Safepoint
	fail := func(err error) reply {
		sv.v.Continue()
		return errReply(err)
	}
	if snap.WASI.Stdout, err = os.ReadFile(sv.stdout.Name()); err != nil {
		return fail(err)
	}
	if snap.WASI.Stderr, err = os.ReadFile(sv.stderr.Name()); err != nil {
		return fail(err)
	}
	m, err := sv.s.Load(sv.name)
	if err != nil {
		return fail(err)
	}
	snap.Meta = map[string]string{MetaName: m.Spec.Name, MetaModule: m.Spec.Module, MetaID: m.ID}
	if req.Module {
		hash, _ := parseHash(m.ModuleHash)
		p, err := sv.s.cache().Load(hash)
		if err != nil {
			return fail(err)
		}
		snap.Module = p.Bytes
	}
	w := time.Now()
	if err := writeSnapshot(req.Path, snap, req.Module, !req.Transient); err != nil {
		return fail(err)
	}
	t.Write = time.Since(w)
	st, err := os.Stat(req.Path)
	if err != nil {
		return fail(err)
	}
	return reply{OK: true, Bytes: st.Size(), StopTimings: t}
}

func (sv *supervisor) close() {
	if sv.v != nil {
		sv.v.Close(context.Background())
	}
	if sv.ln != nil {
		sv.ln.Close()
		os.Remove(filepath.Join(sv.dir, controlSocket))
	}
	for _, f := range []*os.File{sv.stdout, sv.stderr} {
		if f != nil {
			f.Close()
		}
	}
	if sv.cancel != nil {
		sv.cancel()
	}
	sv.run.Unlock()
}

// Keys of Snapshot.Meta that vessel pods record.
const (
	// MetaName is the pod's name.
	MetaName = "podctl.pod.name"
	// MetaModule is the module's path at creation, for display.
	MetaModule = "podctl.pod.module"
	// MetaID is the pod's ID: a destination that holds a pod prepared
	// from an earlier migration of the same pod knows from it that the
	// earlier one was abandoned (Store.Supersede).
	MetaID = "podctl.pod.id"
)

// writeSnapshot encodes snap into path atomically (temp, rename), synced
// to disk if durable. Without module, snap.Module is left out.
func writeSnapshot(path string, snap *snapshot.Snapshot, module, durable bool) error {
	if !module && snap.Module != nil {
		cp := *snap
		cp.Module = nil
		snap = &cp
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	err = snapshot.Encode(bw, snap)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && durable {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write snapshot %s: %w", path, err)
	}
	if !durable {
		return nil
	}
	return statedir.SyncDir(filepath.Dir(path))
}

func readSnapshot(path string) (*snapshot.Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return snapshot.Decode(bufio.NewReaderSize(f, 1<<20), snapshot.DefaultLimits())
}

// Started reads the start report of a housed supervisor (see HousedEnv):
// done is false until it has written one, and err is the failure it
// reported.
func (s Store) Started(name string) (done bool, err error) {
	var rep reply
	err = statedir.ReadJSON(filepath.Join(s.podDir(name), startedFile), &rep)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("vessel pod %s: start report: %w", name, err)
	}
	return true, rep.err()
}
