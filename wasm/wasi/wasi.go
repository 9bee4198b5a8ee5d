package wasi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// ModuleName is the name of the host module guests import WASI preview 1
// from.
const ModuleName = "wasi_snapshot_preview1"

// PreopenDir maps a host directory to the name the guest sees.
type PreopenDir struct {
	// GuestPath is the name the guest knows the directory by, as
	// fd_prestat_dir_name returns it: "/" or "/data", say. As in wazero,
	// "", "." and "./" all mean "/".
	GuestPath string
	// HostDir is the host directory the guest reaches through it. Nothing
	// outside it is reachable, whatever the path or symlink.
	HostDir string
}

// Config is what a System starts from.
type Config struct {
	// Args are the guest's arguments, the program name first, and Env its
	// environment, entries "K=V". Neither may contain a NUL byte.
	Args, Env []string
	// Stdin is what the guest reads from descriptor 0; nil reads as empty.
	Stdin io.Reader
	// Stdout and Stderr receive what the guest writes to descriptors 1
	// and 2; nil discards it.
	Stdout, Stderr io.Writer
	// Preopens are the directories the guest may use. They get
	// descriptors 3, 4, ... in order.
	Preopens []PreopenDir
	// Waiter, if set, is how poll_oneoff waits, so that the host can
	// interrupt a guest waiting there (see Waiter); nil waits out the
	// time.
	Waiter Waiter
}

// Waiter lets a host stop a guest that waits in poll_oneoff, by unwinding
// it from there with Asyncify (poll_oneoff must then be one of the
// imports Asyncify unwinds through). A guest rewound later calls
// poll_oneoff again with the same arguments, and it waits anew.
type Waiter interface {
	// Enter is called as poll_oneoff starts, before it reads anything:
	// a rewinding guest is back where it was unwound from.
	Enter(ctx context.Context, mod api.Module)
	// Wait waits for d, or until ctx is done, and reports false; or it
	// starts unwinding the guest and reports true: poll_oneoff then
	// returns at once, its results unwritten (the guest's code ignores
	// them while it unwinds).
	Wait(ctx context.Context, mod api.Module, d time.Duration) (unwinding bool)
}

// System is a virtualized WASI preview 1 system interface: the guest's
// arguments, environment, clocks and descriptor table. All of its state
// is held here rather than in wazero, so that State can export it and
// Restore rebuild it on another host.
//
// A System serves one guest module instance at a time. Its methods are
// safe for concurrent use; State waits for a WASI call in progress (other
// than a sleeping poll_oneoff) to return.
type System struct {
	mu sync.Mutex

	args, env      []string
	stdin          io.Reader
	stdout, stderr io.Writer
	waiter         Waiter

	// clock is the virtual monotonic clock.
	clock monotonicClock
	// preopens are the preopened directories, in descriptor order.
	preopens []*preopen
	// fds is the descriptor table; nil once the System is closed.
	fds map[uint32]*descriptor
}

// monotonicClock is a monotonic clock that starts at base: it reads base
// plus the host monotonic time elapsed since start.
type monotonicClock struct {
	base  uint64
	start time.Time
}

// now returns the clock's reading in nanoseconds.
func (c monotonicClock) now() uint64 {
	return c.base + uint64(time.Since(c.start))
}

// New returns a System configured by cfg, its preopened directories open.
func New(cfg Config) (*System, error) {
	s, err := newSystem(cfg, cfg.Args, cfg.Env, 0)
	if err != nil {
		return nil, err
	}
	for i, pd := range cfg.Preopens {
		root, err := os.OpenRoot(pd.HostDir)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("wasi: preopen %q: %w", pd.GuestPath, err)
		}
		if err := s.addPreopen(uint32(3+i), normalizeGuestPath(pd.GuestPath), pd.HostDir, root); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// newSystem returns a System with the standard streams of cfg, args and
// env, a monotonic clock reading monotonic, and no preopens.
func newSystem(cfg Config, args, env []string, monotonic uint64) (*System, error) {
	if err := validateStrings("argument", args, false); err != nil {
		return nil, err
	}
	if err := validateStrings("environment entry", env, true); err != nil {
		return nil, err
	}
	guestPaths := make(map[string]bool, len(cfg.Preopens))
	for _, pd := range cfg.Preopens {
		gp := normalizeGuestPath(pd.GuestPath)
		if strings.IndexByte(gp, 0) >= 0 {
			return nil, fmt.Errorf("wasi: preopen guest path %q contains a NUL byte", pd.GuestPath)
		}
		if pd.HostDir == "" {
			return nil, fmt.Errorf("wasi: preopen %q has no host directory", pd.GuestPath)
		}
		if guestPaths[gp] {
			return nil, fmt.Errorf("wasi: two preopens have guest path %q", gp)
		}
		guestPaths[gp] = true
	}
	return &System{
		args:   append([]string(nil), args...),
		env:    append([]string(nil), env...),
		stdin:  cfg.Stdin,
		stdout: cfg.Stdout,
		stderr: cfg.Stderr,
		waiter: cfg.Waiter,
		clock:  monotonicClock{base: monotonic, start: time.Now()},
		fds: map[uint32]*descriptor{
			0: {kind: kindStdin},
			1: {kind: kindStdout},
			2: {kind: kindStderr},
		},
	}, nil
}

// validateStrings checks the arguments or environment entries list.
func validateStrings(what string, list []string, env bool) error {
	var size uint64
	for _, v := range list {
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("wasi: %s %q contains a NUL byte", what, v)
		}
		if env {
			if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
				return fmt.Errorf("wasi: %s %q is not of the form K=V", what, v)
			}
		}
		size += uint64(len(v)) + 1
	}
	if size > math.MaxUint32 || uint64(len(list)) > math.MaxUint32/4 {
		return fmt.Errorf("wasi: %ss too large", what)
	}
	return nil
}

// normalizeGuestPath returns p, or "/" when p names the root only by
// slashes and dots, as wazero does.
func normalizeGuestPath(p string) string {
	if strings.Trim(p, "/.") == "" && !strings.Contains(p, "..") {
		return "/"
	}
	return p
}

// addPreopen adds the preopened directory root, whose guest path is
// guestPath, at descriptor fd.
func (s *System) addPreopen(fd uint32, guestPath, hostDir string, root *os.Root) error {
	f, err := root.Open(".")
	if err != nil {
		root.Close()
		return fmt.Errorf("wasi: preopen %q: opening %s: %w", guestPath, hostDir, err)
	}
	p := &preopen{fd: fd, guestPath: guestPath, hostDir: hostDir, root: root}
	s.preopens = append(s.preopens, p)
	s.fds[fd] = &descriptor{
		kind:             kindPreopen,
		pre:              p,
		path:             ".",
		file:             f,
		read:             true,
		rightsBase:       dirRights,
		rightsInheriting: fileRights | dirRights,
	}
	return nil
}

// Close closes every host file and directory the System holds. WASI calls
// made afterwards fail with EBADF.
func (s *System) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, fd := range slices.Sorted(maps.Keys(s.fds)) {
		if f := s.fds[fd].file; f != nil {
			if err := f.Close(); err != nil {
				errs = append(errs, fmt.Errorf("wasi: closing fd %d: %w", fd, err))
			}
		}
	}
	s.fds = nil
	for _, p := range s.preopens {
		if err := p.root.Close(); err != nil {
			errs = append(errs, fmt.Errorf("wasi: closing preopen %q: %w", p.guestPath, err))
		}
	}
	s.preopens = nil
	return errors.Join(errs...)
}

// The value types of host function parameters.
const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// param is a host function parameter.
type param struct {
	name string
	typ  api.ValueType
	// pointer is set when the parameter is an address in guest memory.
	pointer bool
}

// hostFunc is a WASI function: fn gets the parameters in p and returns
// the errno.
type hostFunc struct {
	name   string
	fn     func(ctx context.Context, mod api.Module, p []uint64) errno
	params []param
	// unlocked functions run without holding the System's lock: they
	// sleep, or touch no state.
	unlocked bool
}

// functions lists the WASI preview 1 functions other than proc_exit.
func (s *System) functions() []hostFunc {
	fd := param{"fd", i32, false}
	ptr := func(name string) param { return param{name, i32, true} }
	u32 := func(name string) param { return param{name, i32, false} }
	u64 := func(name string) param { return param{name, i64, false} }
	return []hostFunc{
		{name: "args_get", fn: s.argsGet, params: []param{ptr("argv"), ptr("argv_buf")}},
		{name: "args_sizes_get", fn: s.argsSizesGet, params: []param{ptr("result.argc"), ptr("result.argv_len")}},
		{name: "environ_get", fn: s.environGet, params: []param{ptr("environ"), ptr("environ_buf")}},
		{name: "environ_sizes_get", fn: s.environSizesGet, params: []param{ptr("result.environc"), ptr("result.environv_len")}},
		{name: "clock_res_get", fn: s.clockResGet, params: []param{u32("id"), ptr("result.resolution")}},
		{name: "clock_time_get", fn: s.clockTimeGet, params: []param{u32("id"), u64("precision"), ptr("result.timestamp")}},
		{name: "fd_advise", fn: s.fdAdvise, params: []param{fd, u64("offset"), u64("len"), u32("advice")}},
		{name: "fd_allocate", fn: s.fdAllocate, params: []param{fd, u64("offset"), u64("len")}},
		{name: "fd_close", fn: s.fdClose, params: []param{fd}},
		{name: "fd_datasync", fn: s.fdSync, params: []param{fd}},
		{name: "fd_fdstat_get", fn: s.fdFdstatGet, params: []param{fd, ptr("result.stat")}},
		{name: "fd_fdstat_set_flags", fn: s.fdFdstatSetFlags, params: []param{fd, u32("flags")}},
		{name: "fd_fdstat_set_rights", fn: s.fdFdstatSetRights, params: []param{fd, u64("fs_rights_base"), u64("fs_rights_inheriting")}},
		{name: "fd_filestat_get", fn: s.fdFilestatGet, params: []param{fd, ptr("result.filestat")}},
		{name: "fd_filestat_set_size", fn: s.fdFilestatSetSize, params: []param{fd, u64("size")}},
		{name: "fd_filestat_set_times", fn: s.fdFilestatSetTimes, params: []param{fd, u64("atim"), u64("mtim"), u32("fst_flags")}},
		{name: "fd_pread", fn: s.fdPread, params: []param{fd, ptr("iovs"), u32("iovs_len"), u64("offset"), ptr("result.nread")}},
		{name: "fd_prestat_get", fn: s.fdPrestatGet, params: []param{fd, ptr("result.prestat")}},
		{name: "fd_prestat_dir_name", fn: s.fdPrestatDirName, params: []param{fd, ptr("result.path"), u32("result.path_len")}},
		{name: "fd_pwrite", fn: s.fdPwrite, params: []param{fd, ptr("iovs"), u32("iovs_len"), u64("offset"), ptr("result.nwritten")}},
		{name: "fd_read", fn: s.fdRead, params: []param{fd, ptr("iovs"), u32("iovs_len"), ptr("result.nread")}},
		{name: "fd_readdir", fn: s.fdReaddir, params: []param{fd, ptr("buf"), u32("buf_len"), u64("cookie"), ptr("result.bufused")}},
		{name: "fd_renumber", fn: s.fdRenumber, params: []param{fd, u32("to")}},
		{name: "fd_seek", fn: s.fdSeek, params: []param{fd, u64("offset"), u32("whence"), ptr("result.newoffset")}},
		{name: "fd_sync", fn: s.fdSync, params: []param{fd}},
		{name: "fd_tell", fn: s.fdTell, params: []param{fd, ptr("result.offset")}},
		{name: "fd_write", fn: s.fdWrite, params: []param{fd, ptr("iovs"), u32("iovs_len"), ptr("result.nwritten")}},
		{name: "path_create_directory", fn: s.pathCreateDirectory, params: []param{fd, ptr("path"), u32("path_len")}},
		{name: "path_filestat_get", fn: s.pathFilestatGet, params: []param{fd, u32("flags"), ptr("path"), u32("path_len"), ptr("result.filestat")}},
		{name: "path_filestat_set_times", fn: s.pathFilestatSetTimes, params: []param{fd, u32("flags"), ptr("path"), u32("path_len"), u64("atim"), u64("mtim"), u32("fst_flags")}},
		{name: "path_link", fn: s.pathLink, params: []param{u32("old_fd"), u32("old_flags"), ptr("old_path"), u32("old_path_len"), u32("new_fd"), ptr("new_path"), u32("new_path_len")}},
		{name: "path_open", fn: s.pathOpen, params: []param{fd, u32("dirflags"), ptr("path"), u32("path_len"), u32("oflags"), u64("fs_rights_base"), u64("fs_rights_inheriting"), u32("fdflags"), ptr("result.opened_fd")}},
		{name: "path_readlink", fn: s.pathReadlink, params: []param{fd, ptr("path"), u32("path_len"), ptr("buf"), u32("buf_len"), ptr("result.bufused")}},
		{name: "path_remove_directory", fn: s.pathRemoveDirectory, params: []param{fd, ptr("path"), u32("path_len")}},
		{name: "path_rename", fn: s.pathRename, params: []param{fd, ptr("old_path"), u32("old_path_len"), u32("new_fd"), ptr("new_path"), u32("new_path_len")}},
		{name: "path_symlink", fn: s.pathSymlink, params: []param{ptr("old_path"), u32("old_path_len"), fd, ptr("new_path"), u32("new_path_len")}},
		{name: "path_unlink_file", fn: s.pathUnlinkFile, params: []param{fd, ptr("path"), u32("path_len")}},
		{name: "poll_oneoff", fn: s.pollOneoff, params: []param{ptr("in"), ptr("out"), u32("nsubscriptions"), ptr("result.nevents")}, unlocked: true},
		{name: "proc_raise", fn: procRaise, params: []param{u32("sig")}, unlocked: true},
		{name: "sched_yield", fn: schedYield, unlocked: true},
		{name: "random_get", fn: randomGet, params: []param{ptr("buf"), u32("buf_len")}, unlocked: true},
		{name: "sock_accept", fn: s.sockUnsupported, params: []param{fd, u32("flags"), ptr("result.fd")}},
		{name: "sock_recv", fn: s.sockUnsupported, params: []param{fd, ptr("ri_data"), u32("ri_data_len"), u32("ri_flags"), ptr("result.ro_datalen"), ptr("result.ro_flags")}},
		{name: "sock_send", fn: s.sockUnsupported, params: []param{fd, ptr("si_data"), u32("si_data_len"), u32("si_flags"), ptr("result.so_datalen")}},
		{name: "sock_shutdown", fn: s.sockUnsupported, params: []param{fd, u32("how")}},
	}
}

// Instantiate registers the host module ModuleName, backed by s, in r.
// Call it once per runtime, before instantiating the guest; closing the
// returned module does not close s.
func (s *System) Instantiate(ctx context.Context, r wazero.Runtime) (api.Closer, error) {
	b := r.NewHostModuleBuilder(ModuleName)
	for _, f := range s.functions() {
		types := make([]api.ValueType, len(f.params))
		names := make([]string, len(f.params))
		usesMemory := false
		for i, p := range f.params {
			types[i], names[i] = p.typ, p.name
			usesMemory = usesMemory || p.pointer
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(s.wrap(f, usesMemory), types, []api.ValueType{i32}).
			WithParameterNames(names...).
			WithResultNames("errno").
			Export(f.name)
	}
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(procExit), []api.ValueType{i32}, nil).
		WithParameterNames("rval").
		Export("proc_exit")
	mod, err := b.Instantiate(ctx)
	if err != nil {
		return nil, fmt.Errorf("wasi: instantiating host module %s: %w", ModuleName, err)
	}
	return mod, nil
}

// wrap turns f into a wazero host function: it takes the System's lock
// unless f is unlocked, and returns f's errno. If f usesMemory and the
// guest has none, it returns EFAULT.
func (s *System) wrap(f hostFunc, usesMemory bool) api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		if usesMemory && mod.Memory() == nil {
			stack[0] = uint64(errnoFault)
			return
		}
		if !f.unlocked {
			s.mu.Lock()
			defer s.mu.Unlock()
		}
		stack[0] = uint64(f.fn(ctx, mod, stack))
	}
}
