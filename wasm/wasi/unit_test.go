package wasi

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/podctl/podctl/wasm/snapshot"
)

// memoryModule is a WebAssembly module that exports one page of memory
// and nothing else.
var memoryModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
	0x05, 0x03, 0x01, 0x00, 0x01, // memory section: one memory, min 1 page
	0x07, 0x0a, 0x01, 0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00, // export "memory"
}

// memSize is the size of memoryModule's memory.
const memSize = 65536

// harness calls a System's host functions directly, as a guest with
// memoryModule's memory would.
type harness struct {
	t   *testing.T
	s   *System
	mod api.Module
	mem api.Memory
}

// newHarness returns a harness for a System configured by cfg.
func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return harnessFor(t, s)
}

// harnessFor returns a harness for s, which it closes with t.
func harnessFor(t *testing.T, s *System) *harness {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	mod, err := r.Instantiate(ctx, memoryModule)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close(ctx)
		s.Close()
	})
	return &harness{t: t, s: s, mod: mod, mem: mod.Memory()}
}

// call calls WASI function name with params.
func (h *harness) call(name string, params ...uint64) errno {
	h.t.Helper()
	return h.callCtx(context.Background(), name, params...)
}

// callCtx calls WASI function name with params and context ctx.
func (h *harness) callCtx(ctx context.Context, name string, params ...uint64) errno {
	h.t.Helper()
	for _, f := range h.s.functions() {
		if f.name == name {
			stack := make([]uint64, max(len(params), 1))
			copy(stack, params)
			h.s.wrap(f, true)(ctx, h.mod, stack)
			return errno(stack[0])
		}
	}
	h.t.Fatalf("no function %s", name)
	return 0
}

// Scratch addresses in memory.
const (
	resultAddr = 16
	iovAddr    = 64
	pathAddr   = 256
	path2Addr  = 512
	bufAddr    = 1024
)

// str writes s at addr and returns addr and its length, as parameters.
func (h *harness) str(addr uint32, s string) (uint64, uint64) {
	if !h.mem.WriteString(addr, s) {
		h.t.Fatalf("writing %q at %d", s, addr)
	}
	return uint64(addr), uint64(len(s))
}

// u32 reads the uint32 at addr.
func (h *harness) u32(addr uint32) uint32 {
	v, _ := h.mem.ReadUint32Le(addr)
	return v
}

// u64 reads the uint64 at addr.
func (h *harness) u64(addr uint32) uint64 {
	v, _ := h.mem.ReadUint64Le(addr)
	return v
}

// open opens name relative to fd with oflags, rights and fdflags, and
// returns the new descriptor.
func (h *harness) open(fd uint32, name string, oflags uint32, rights uint64, fdflags uint16) (uint32, errno) {
	h.t.Helper()
	p, n := h.str(pathAddr, name)
	e := h.call("path_open", uint64(fd), lookupSymlinkFollow, p, n, uint64(oflags), rights, 0, uint64(fdflags), resultAddr)
	return h.u32(resultAddr), e
}

// mustOpen is open, failing the test on an error.
func (h *harness) mustOpen(fd uint32, name string, oflags uint32, rights uint64, fdflags uint16) uint32 {
	h.t.Helper()
	nfd, e := h.open(fd, name, oflags, rights, fdflags)
	if e != 0 {
		h.t.Fatalf("path_open %q: errno %d", name, e)
	}
	return nfd
}

// write writes data to fd and returns the errno.
func (h *harness) write(fd uint32, data string) errno {
	h.t.Helper()
	p, n := h.str(bufAddr, data)
	h.mem.WriteUint32Le(iovAddr, uint32(p))
	h.mem.WriteUint32Le(iovAddr+4, uint32(n))
	return h.call("fd_write", uint64(fd), iovAddr, 1, resultAddr)
}

// pathCall calls a function whose parameters are fd, path and path_len.
func (h *harness) pathCall(name string, fd uint32, path string) errno {
	h.t.Helper()
	p, n := h.str(pathAddr, path)
	return h.call(name, uint64(fd), p, n)
}

// expect fails the test unless got is want.
func expect(t *testing.T, what string, got, want errno) {
	t.Helper()
	if got != want {
		t.Errorf("%s: errno %d, want %d", what, got, want)
	}
}

func TestFault(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o600)
	h := newHarness(t, Config{Args: []string{"prog", "arg"}, Env: []string{"A=B"}, Preopens: []PreopenDir{{"/", dir}}})
	f := h.mustOpen(3, "f", 0, rightFdRead|rightFdWrite, 0)
	const end = memSize

	expect(t, "args_sizes_get", h.call("args_sizes_get", end-2, 0), errnoFault)
	expect(t, "args_get argv", h.call("args_get", end-4, 0), errnoFault)
	expect(t, "args_get buf", h.call("args_get", 0, end-5), errnoFault)
	expect(t, "environ_get buf", h.call("environ_get", 0, end-3), errnoFault)
	expect(t, "environ_sizes_get", h.call("environ_sizes_get", 0, end), errnoFault)
	expect(t, "clock_time_get", h.call("clock_time_get", 1, 0, end-7), errnoFault)
	expect(t, "clock_res_get", h.call("clock_res_get", 0, end-1), errnoFault)
	expect(t, "fd_write iovs", h.call("fd_write", 1, end-4, 1, resultAddr), errnoFault)
	expect(t, "fd_write iovs count", h.call("fd_write", 1, 0, 1<<30, resultAddr), errnoFault)
	h.mem.WriteUint32Le(iovAddr, end-10)
	h.mem.WriteUint32Le(iovAddr+4, 11)
	expect(t, "fd_write buffer", h.call("fd_write", 1, iovAddr, 1, resultAddr), errnoFault)
	expect(t, "fd_read buffer", h.call("fd_read", uint64(f), iovAddr, 1, resultAddr), errnoFault)
	expect(t, "fd_pwrite buffer", h.call("fd_pwrite", uint64(f), iovAddr, 1, 0, resultAddr), errnoFault)
	h.mem.WriteUint32Le(iovAddr+4, 1)
	expect(t, "fd_read result", h.call("fd_read", uint64(f), iovAddr, 1, end-3), errnoFault)
	expect(t, "fd_fdstat_get", h.call("fd_fdstat_get", 1, end-23), errnoFault)
	expect(t, "fd_filestat_get", h.call("fd_filestat_get", 3, end-63), errnoFault)
	expect(t, "fd_prestat_get", h.call("fd_prestat_get", 3, end-7), errnoFault)
	expect(t, "fd_prestat_dir_name", h.call("fd_prestat_dir_name", 3, end, 1), errnoFault)
	expect(t, "fd_readdir buf", h.call("fd_readdir", 3, end-100, 101, 0, resultAddr), errnoFault)
	expect(t, "fd_readdir result", h.call("fd_readdir", 3, bufAddr, 100, 0, end), errnoFault)
	expect(t, "fd_seek result", h.call("fd_seek", uint64(f), 2, 0, end-7), errnoFault)
	expect(t, "fd_tell", h.call("fd_tell", uint64(f), end-1), errnoFault)
	if e := h.call("fd_tell", uint64(f), resultAddr); e != 0 || h.u64(resultAddr) != 0 {
		t.Errorf("fd_seek moved the file despite EFAULT: %d %d", e, h.u64(resultAddr))
	}
	expect(t, "path_open path", h.call("path_open", 3, 0, end-1, 2, 0, 0, 0, 0, resultAddr), errnoFault)
	p, n := h.str(pathAddr, "f")
	expect(t, "path_open result", h.call("path_open", 3, 0, p, n, 0, 0, 0, 0, end-3), errnoFault)
	expect(t, "path_filestat_get", h.call("path_filestat_get", 3, 0, p, n, end-63), errnoFault)
	expect(t, "path_readlink", h.call("path_readlink", 3, p, n, end-1, 10, resultAddr), errnoFault)
	expect(t, "path_symlink", h.call("path_symlink", end-1, 5, 3, p, n), errnoFault)
	expect(t, "path_create_directory", h.call("path_create_directory", 3, end, 1), errnoFault)
	expect(t, "random_get", h.call("random_get", end-10, 11), errnoFault)
	expect(t, "poll_oneoff in", h.call("poll_oneoff", end-47, 0, 1, resultAddr), errnoFault)
	expect(t, "poll_oneoff out", h.call("poll_oneoff", 0, end-31, 1, resultAddr), errnoFault)
	expect(t, "poll_oneoff count", h.call("poll_oneoff", 0, 0, 1<<28, resultAddr), errnoFault)
	// And the limits themselves are fine.
	expect(t, "random_get to the end", h.call("random_get", end-10, 10), errnoSuccess)
	expect(t, "clock_time_get to the end", h.call("clock_time_get", 1, 0, end-8), errnoSuccess)
}

func TestArgsEnv(t *testing.T) {
	h := newHarness(t, Config{Args: []string{"prog", "", "ü"}, Env: []string{"A=B", "C="}})
	expect(t, "args_sizes_get", h.call("args_sizes_get", 0, 4), 0)
	if h.u32(0) != 3 || h.u32(4) != 5+1+3 {
		t.Errorf("args sizes %d %d", h.u32(0), h.u32(4))
	}
	expect(t, "args_get", h.call("args_get", 100, 200), 0)
	var got []string
	for i := uint32(0); i < 3; i++ {
		ptr := h.u32(100 + 4*i)
		b, _ := h.mem.Read(ptr, 16)
		got = append(got, string(b[:strings.IndexByte(string(b), 0)]))
	}
	if !reflect.DeepEqual(got, []string{"prog", "", "ü"}) || h.u32(100) != 200 {
		t.Errorf("args %q", got)
	}
	expect(t, "environ_sizes_get", h.call("environ_sizes_get", 0, 4), 0)
	if h.u32(0) != 2 || h.u32(4) != 4+3 {
		t.Errorf("environ sizes %d %d", h.u32(0), h.u32(4))
	}
	expect(t, "environ_get", h.call("environ_get", 100, 200), 0)
	if b, _ := h.mem.Read(200, 7); string(b) != "A=B\x00C=\x00" {
		t.Errorf("environ %q", b)
	}

	for _, cfg := range []Config{
		{Env: []string{"NOEQUALS"}},
		{Env: []string{"=value"}},
		{Args: []string{"a\x00b"}},
		{Preopens: []PreopenDir{{"/", t.TempDir()}, {"", t.TempDir()}}},
		{Preopens: []PreopenDir{{"/x", filepath.Join(t.TempDir(), "missing")}}},
	} {
		if s, err := New(cfg); err == nil {
			s.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// parsedDirent is an entry parsed from fd_readdir's buffer.
type parsedDirent struct {
	next     uint64
	name     string
	filetype uint8
}

// readdirAll lists fd with fd_readdir through a buffer of bufLen bytes,
// following cookies as wasi-libc does.
func (h *harness) readdirAll(fd uint32, bufLen uint32) []parsedDirent {
	h.t.Helper()
	var all []parsedDirent
	cookie := uint64(0)
	for range 1000 {
		if e := h.call("fd_readdir", uint64(fd), bufAddr, uint64(bufLen), cookie, resultAddr); e != 0 {
			h.t.Fatalf("fd_readdir: errno %d", e)
		}
		used := h.u32(resultAddr)
		buf, _ := h.mem.Read(bufAddr, used)
		pos := uint32(0)
		for pos+direntSize <= used {
			namlen := binary.LittleEndian.Uint32(buf[pos+16:])
			if pos+direntSize+namlen > used {
				break // truncated: read again from its cookie
			}
			d := parsedDirent{
				next:     binary.LittleEndian.Uint64(buf[pos:]),
				name:     string(buf[pos+direntSize : pos+direntSize+namlen]),
				filetype: buf[pos+20],
			}
			all = append(all, d)
			cookie = d.next
			pos += direntSize + namlen
		}
		if used < bufLen {
			return all
		}
		if pos == 0 {
			h.t.Fatalf("buffer of %d too small for an entry", bufLen)
		}
	}
	h.t.Fatal("fd_readdir never ends")
	return nil
}

func TestReaddir(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b", "a", "c" + strings.Repeat("-", 60), "e"} {
		os.WriteFile(filepath.Join(dir, name), nil, 0o600)
	}
	os.Mkdir(filepath.Join(dir, "d"), 0o700)
	os.Symlink("a", filepath.Join(dir, "l"))
	h := newHarness(t, Config{Preopens: []PreopenDir{{"/", dir}}})
	want := []string{".", "..", "a", "b", "c" + strings.Repeat("-", 60), "d", "e", "l"}
	wantTypes := []uint8{3, 3, 4, 4, 4, 3, 4, 7}
	for _, bufLen := range []uint32{4096, 100, 86} {
		got := h.readdirAll(3, bufLen)
		var names []string
		for i, d := range got {
			names = append(names, d.name)
			if d.next != uint64(i+1) || d.filetype != wantTypes[i] {
				t.Errorf("buffer %d: entry %d %+v", bufLen, i, d)
			}
		}
		if !reflect.DeepEqual(names, want) {
			t.Errorf("buffer %d: %q, want %q", bufLen, names, want)
		}
	}
	// An entry too long for the buffer fills it: the guest must grow it.
	expect(t, "truncated", h.call("fd_readdir", 3, bufAddr, 30, 4, resultAddr), 0)
	if b, _ := h.mem.Read(bufAddr, 30); h.u32(resultAddr) != 30 || binary.LittleEndian.Uint64(b) != 5 || string(b[24:]) != "c-----" {
		t.Errorf("truncated entry: %d bytes %q", h.u32(resultAddr), b)
	}
	// A cookie past the end lists nothing; a tiny buffer is EINVAL, a file EBADF.
	expect(t, "cookie past the end", h.call("fd_readdir", 3, bufAddr, 100, 100, resultAddr), 0)
	if h.u32(resultAddr) != 0 {
		t.Errorf("past the end: %d bytes", h.u32(resultAddr))
	}
	expect(t, "small buffer", h.call("fd_readdir", 3, bufAddr, 23, 0, resultAddr), errnoInval)
	f := h.mustOpen(3, "a", 0, rightFdRead, 0)
	expect(t, "readdir a file", h.call("fd_readdir", uint64(f), bufAddr, 100, 0, resultAddr), errnoBadf)
	// Changes show from cookie 0 on.
	os.WriteFile(filepath.Join(dir, "f"), nil, 0o600)
	if got := h.readdirAll(3, 4096); len(got) != len(want)+1 {
		t.Errorf("after adding a file: %d entries", len(got))
	}
}

func TestDescriptors(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, Config{Preopens: []PreopenDir{{"/", dir}}})
	expect(t, "close preopen", h.call("fd_close", 3), errnoNotsup)
	expect(t, "renumber preopen", h.call("fd_renumber", 3, 7), errnoNotsup)
	expect(t, "close unknown", h.call("fd_close", 42), errnoBadf)
	f := h.mustOpen(3, "f", oflagCreat, rightFdRead|rightFdWrite, 0)
	if f != 4 {
		t.Fatalf("first fd %d", f)
	}
	expect(t, "write", h.write(f, "hello"), 0)
	expect(t, "renumber", h.call("fd_renumber", 4, 9), 0)
	expect(t, "old number", h.call("fd_fdstat_get", 4, resultAddr), errnoBadf)
	if g := h.mustOpen(3, "g", oflagCreat, rightFdWrite, 0); g != 4 {
		t.Errorf("lowest free fd: %d", g)
	}
	expect(t, "renumber onto preopen", h.call("fd_renumber", 9, 3), errnoNotsup)
	expect(t, "renumber onto g", h.call("fd_renumber", 9, 4), 0)
	st, err := h.s.State()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.FDs) != 1 || st.FDs[0].FD != 4 || st.FDs[0].Path != "f" || st.FDs[0].Offset != 5 || st.NextFD != 5 {
		t.Errorf("state: %+v next %d", st.FDs, st.NextFD)
	}

	// A file renumbered onto a standard stream, or a closed stream, cannot move.
	expect(t, "renumber onto stderr", h.call("fd_renumber", 4, 2), 0)
	if _, err := h.s.State(); !errors.Is(err, ErrNotMovable) {
		t.Errorf("State with a file at fd 2: %v", err)
	}
	expect(t, "close stdin", h.call("fd_close", 0), 0)
	if _, err := h.s.State(); !errors.Is(err, ErrNotMovable) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("State with stdin closed: %v", err)
	}
	if f := h.mustOpen(3, "f", 0, rightFdRead, 0); f != 3+1 {
		t.Errorf("fds below 3 are not handed out: got %d", f)
	}
}

func TestUnlinkedOpenFile(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, Config{Preopens: []PreopenDir{{"/", dir}}})
	f := h.mustOpen(3, "x", oflagCreat, rightFdWrite, 0)
	expect(t, "unlink", h.pathCall("path_unlink_file", 3, "x"), 0)
	if _, err := h.s.State(); !errors.Is(err, ErrNotMovable) || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("State with an unlinked open file: %v", err)
	}
	expect(t, "close", h.call("fd_close", uint64(f)), 0)
	if _, err := h.s.State(); err != nil {
		t.Errorf("State once closed: %v", err)
	}
}

func TestFdstatAndFlags(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("0123"), 0o600)
	h := newHarness(t, Config{Preopens: []PreopenDir{{"/data", dir}}})
	fdstat := func(fd uint32) (uint8, uint16, uint64) {
		t.Helper()
		if e := h.call("fd_fdstat_get", uint64(fd), bufAddr); e != 0 {
			t.Fatalf("fd_fdstat_get %d: %d", fd, e)
		}
		b, _ := h.mem.Read(bufAddr, fdstatSize)
		return b[0], binary.LittleEndian.Uint16(b[2:]), binary.LittleEndian.Uint64(b[8:])
	}
	for fd := uint32(0); fd < 3; fd++ {
		if ft, flags, _ := fdstat(fd); ft != filetypeBlockDevice || flags != 0 {
			t.Errorf("stdio %d: type %d flags %d", fd, ft, flags)
		}
	}
	expect(t, "nonblock on stdout", h.call("fd_fdstat_set_flags", 1, uint64(fdflagNonblock)), 0)
	if _, flags, _ := fdstat(1); flags != 0 {
		t.Errorf("stdout flags %d after nonblock", flags)
	}
	if ft, _, rights := fdstat(3); ft != filetypeDirectory || rights&rightPathOpen == 0 {
		t.Errorf("preopen: type %d rights %#x", ft, rights)
	}
	expect(t, "prestat", h.call("fd_prestat_get", 3, resultAddr), 0)
	if h.u32(resultAddr) != 0 || h.u32(resultAddr+4) != 5 {
		t.Errorf("prestat %d %d", h.u32(resultAddr), h.u32(resultAddr+4))
	}
	expect(t, "prestat_dir_name", h.call("fd_prestat_dir_name", 3, bufAddr, 5), 0)
	if b, _ := h.mem.Read(bufAddr, 5); string(b) != "/data" {
		t.Errorf("dir name %q", b)
	}
	expect(t, "prestat_dir_name too long", h.call("fd_prestat_dir_name", 3, bufAddr, 6), errnoNametoolong)
	expect(t, "prestat of stdout", h.call("fd_prestat_get", 1, resultAddr), errnoBadf)
	expect(t, "prestat past the end", h.call("fd_prestat_get", 4, resultAddr), errnoBadf)

	// Append: writes go to the end whatever the position.
	f := h.mustOpen(3, "f", 0, rightFdWrite|rightFdSeek, fdflagAppend)
	if ft, flags, rights := fdstat(f); ft != filetypeRegularFile || flags != fdflagAppend || rights&rightFdRead != 0 || rights&rightFdWrite == 0 {
		t.Errorf("file: type %d flags %d rights %#x", ft, flags, rights)
	}
	expect(t, "write", h.write(f, "45"), 0)
	expect(t, "seek", h.call("fd_seek", uint64(f), 0, 0, resultAddr), 0)
	expect(t, "write again", h.write(f, "67"), 0)
	expect(t, "tell", h.call("fd_tell", uint64(f), resultAddr), 0)
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "01234567" || h.u64(resultAddr) != 8 {
		t.Errorf("after appends: %q at %d", b, h.u64(resultAddr))
	}
	expect(t, "read a write-only file", h.call("fd_read", uint64(f), iovAddr, 1, resultAddr), errnoBadf)
	// Flags change; the synchronous ones cannot.
	expect(t, "set nonblock", h.call("fd_fdstat_set_flags", uint64(f), uint64(fdflagNonblock)), 0)
	if _, flags, _ := fdstat(f); flags != fdflagNonblock {
		t.Errorf("flags %d after set", flags)
	}
	expect(t, "write at position", h.write(f, "X"), 0)
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "01234567X" {
		t.Errorf("no longer appending, at the end anyway: %q", b)
	}
	expect(t, "set sync", h.call("fd_fdstat_set_flags", uint64(f), uint64(fdflagSync)), errnoInval)
	expect(t, "set unknown", h.call("fd_fdstat_set_flags", uint64(f), 1<<5), errnoInval)
	st, err := h.s.State()
	if err != nil || st.FDs[0].Flags != fdflagNonblock || !st.FDs[0].Write || st.FDs[0].Read || st.FDs[0].RightsBase != rightFdWrite|rightFdSeek {
		t.Errorf("state %+v %v", st.FDs, err)
	}

	// Seek and positional I/O where they make no sense.
	expect(t, "seek stdout", h.call("fd_seek", 1, 0, 0, resultAddr), errnoSpipe)
	expect(t, "seek dir", h.call("fd_seek", 3, 0, 0, resultAddr), errnoIsdir)
	expect(t, "seek whence", h.call("fd_seek", uint64(f), 0, 3, resultAddr), errnoInval)
	expect(t, "pread stdin", h.call("fd_pread", 0, iovAddr, 1, 0, resultAddr), errnoSpipe)
	expect(t, "read dir", h.call("fd_read", 3, iovAddr, 1, resultAddr), errnoIsdir)
	expect(t, "write stdin", h.write(0, "x"), errnoBadf)

	// Size, allocation, times.
	expect(t, "set size", h.call("fd_filestat_set_size", uint64(f), 3), 0)
	expect(t, "allocate", h.call("fd_allocate", uint64(f), 4, 6), 0)
	expect(t, "filestat", h.call("fd_filestat_get", uint64(f), bufAddr), 0)
	if size := h.u64(bufAddr + 32); size != 10 {
		t.Errorf("size %d after allocate", size)
	}
	when := uint64(time.Date(2010, 1, 1, 0, 0, 0, 5, time.UTC).UnixNano())
	expect(t, "set times", h.call("fd_filestat_set_times", uint64(f), 0, when, fstflagMtim), 0)
	expect(t, "set times both ways", h.call("fd_filestat_set_times", uint64(f), 0, when, fstflagMtim|fstflagMtimNow), errnoInval)
	expect(t, "filestat", h.call("fd_filestat_get", uint64(f), bufAddr), 0)
	if mtim := h.u64(bufAddr + 48); mtim != when {
		t.Errorf("mtime %d, want %d", mtim, when)
	}
	expect(t, "advise", h.call("fd_advise", uint64(f), 0, 0, 1), 0)
	expect(t, "advise bad", h.call("fd_advise", uint64(f), 0, 0, 9), errnoInval)
	expect(t, "sync", h.call("fd_sync", uint64(f)), 0)
	expect(t, "datasync", h.call("fd_datasync", uint64(f)), 0)
	expect(t, "sync stdout", h.call("fd_sync", 1), 0)
	expect(t, "set rights", h.call("fd_fdstat_set_rights", uint64(f), 0, 0), errnoNosys)
	expect(t, "sock_accept", h.call("sock_accept", 3, 0, resultAddr), errnoNotsup)
	expect(t, "sock_recv", h.call("sock_recv", 99, 0, 0, 0, 0, 0), errnoBadf)
	expect(t, "proc_raise", h.call("proc_raise", 9), errnoNosys)
	expect(t, "sched_yield", h.call("sched_yield"), 0)
}

func TestPathOpen(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600)
	os.Symlink("f", filepath.Join(dir, "l"))
	os.Mkdir(filepath.Join(dir, "d"), 0o700)
	h := newHarness(t, Config{Preopens: []PreopenDir{{"/", dir}}})
	p, n := h.str(pathAddr, "l")
	expect(t, "nofollow symlink", h.call("path_open", 3, 0, p, n, 0, rightFdRead, 0, 0, resultAddr), errnoLoop)
	expect(t, "nofollow symlink excl", h.call("path_open", 3, 0, p, n, oflagCreat|oflagExcl, rightFdRead, 0, 0, resultAddr), errnoExist)
	expect(t, "follow symlink", h.call("path_open", 3, lookupSymlinkFollow, p, n, 0, rightFdRead, 0, 0, resultAddr), 0)
	_, e := h.open(3, "f", oflagDirectory, rightFdRead, 0)
	expect(t, "directory flag on a file", e, errnoNotdir)
	_, e = h.open(3, "f/", 0, rightFdRead, 0)
	expect(t, "trailing slash on a file", e, errnoNotdir)
	_, e = h.open(3, "new", oflagDirectory|oflagCreat, rightFdRead, 0)
	expect(t, "create a directory", e, errnoInval)
	_, e = h.open(3, "f", oflagCreat|oflagExcl, rightFdWrite, 0)
	expect(t, "exclusive", e, errnoExist)
	_, e = h.open(3, "missing", 0, rightFdRead, 0)
	expect(t, "missing", e, errnoNoent)
	_, e = h.open(3, "d", 0, rightFdRead|rightFdWrite, 0)
	expect(t, "directory for writing", e, errnoIsdir)
	_, e = h.open(3, "", 0, rightFdRead, 0)
	expect(t, "empty path", e, errnoInval)
	_, e = h.open(3, "../x", 0, rightFdRead, 0)
	expect(t, "dot-dot", e, errnoPerm)
	_, e = h.open(3, "/f", 0, rightFdRead, 0)
	expect(t, "absolute", e, errnoPerm)
	_, e = h.open(1, "f", 0, rightFdRead, 0)
	expect(t, "relative to a non-directory", e, errnoNotdir)
	d := h.mustOpen(3, "d", oflagDirectory, rightFdReaddir, 0)
	g := h.mustOpen(d, "g", oflagCreat|oflagTrunc, 0, 0) // no rights: read and write
	expect(t, "write g", h.write(g, "gg"), 0)
	self := h.mustOpen(3, ".", oflagDirectory, 0, 0)
	st, err := h.s.State()
	if err != nil {
		t.Fatal(err)
	}
	wantPaths := map[uint32]string{d: "d", g: "d/g", self: ""}
	for _, e := range st.FDs {
		if w, ok := wantPaths[e.FD]; ok && e.Path != w {
			t.Errorf("fd %d path %q, want %q", e.FD, e.Path, w)
		}
	}
	if e := st.FDs[len(st.FDs)-1]; e.FD != self || e.Kind != snapshot.KindDir {
		t.Errorf("preopen reopened: %+v", e)
	}

	// Path functions.
	expect(t, "mkdir", h.pathCall("path_create_directory", 3, "m"), 0)
	expect(t, "mkdir again", h.pathCall("path_create_directory", 3, "m"), errnoExist)
	expect(t, "rmdir a file", h.pathCall("path_remove_directory", 3, "f"), errnoNotdir)
	expect(t, "unlink a dir", h.pathCall("path_unlink_file", 3, "m"), errnoIsdir)
	expect(t, "rmdir preopen", h.pathCall("path_remove_directory", 3, "."), errnoBusy)
	expect(t, "rmdir non-empty", h.pathCall("path_remove_directory", 3, "d"), errnoNotempty)
	expect(t, "rmdir", h.pathCall("path_remove_directory", 3, "m"), 0)
	lp, ln := h.str(pathAddr, "l")
	expect(t, "readlink", h.call("path_readlink", 3, lp, ln, bufAddr, 10, resultAddr), 0)
	if b, _ := h.mem.Read(bufAddr, h.u32(resultAddr)); string(b) != "f" {
		t.Errorf("readlink %q", b)
	}
	expect(t, "readlink short", h.call("path_readlink", 3, lp, ln, bufAddr, 0, resultAddr), errnoInval)
	tp, tn := h.str(path2Addr, "target-that-is-long")
	np, nn := h.str(pathAddr, "l2")
	expect(t, "symlink", h.call("path_symlink", tp, tn, 3, np, nn), 0)
	expect(t, "readlink too long", h.call("path_readlink", 3, np, nn, bufAddr, 5, resultAddr), errnoRange)
	expect(t, "filestat nofollow", h.call("path_filestat_get", 3, 0, np, nn, bufAddr), 0)
	if b, _ := h.mem.ReadByte(bufAddr + 16); b != filetypeSymbolicLink {
		t.Errorf("lstat type %d", b)
	}
	expect(t, "filestat follow dangling", h.call("path_filestat_get", 3, lookupSymlinkFollow, np, nn, bufAddr), errnoNoent)
	when := uint64(time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	expect(t, "symlink times nofollow", h.call("path_filestat_set_times", 3, 0, np, nn, when, when, fstflagAtim|fstflagMtim), 0)
	if fi, err := os.Lstat(filepath.Join(dir, "l2")); err != nil || fi.ModTime().UnixNano() != int64(when) {
		t.Errorf("symlink mtime %v %v", fi.ModTime(), err)
	}
	op, on := h.str(pathAddr, "f")
	lkp, lkn := h.str(path2Addr, "hard")
	expect(t, "link", h.call("path_link", 3, 0, op, on, 3, lkp, lkn), 0)
	if _, err := h.s.State(); !errors.Is(err, ErrNotMovable) {
		t.Errorf("State with a hard link: %v", err)
	}
	expect(t, "unlink", h.pathCall("path_unlink_file", 3, "hard"), 0)
	if _, err := h.s.State(); err != nil {
		t.Errorf("State: %v", err)
	}
}

func TestRename(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a", "in"), 0o700)
	os.WriteFile(filepath.Join(dir, "a", "in", "x"), []byte("x"), 0o600)
	os.Mkdir(filepath.Join(dir, "empty"), 0o700)
	os.Mkdir(filepath.Join(dir, "full"), 0o700)
	os.WriteFile(filepath.Join(dir, "full", "y"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
	h := newHarness(t, Config{Preopens: []PreopenDir{{"/", dir}, {"/other", other}}})
	rename := func(from string, toFD uint32, to string) errno {
		op, on := h.str(pathAddr, from)
		np, nn := h.str(path2Addr, to)
		return h.call("path_rename", 3, op, on, uint64(toFD), np, nn)
	}
	x := h.mustOpen(3, "a/in/x", 0, rightFdRead, 0)
	in := h.mustOpen(3, "a/in", oflagDirectory, 0, 0)
	expect(t, "file onto a dir", rename("file", 3, "empty"), errnoIsdir)
	expect(t, "dir onto a file", rename("a", 3, "file"), errnoNotdir)
	expect(t, "dir onto a non-empty dir", rename("a", 3, "full"), errnoNotempty)
	expect(t, "dir into itself", rename("a", 3, "a/in/deeper"), errnoInval)
	expect(t, "across preopens", rename("file", 4, "file"), errnoXdev)
	expect(t, "missing", rename("missing", 3, "z"), errnoNoent)
	expect(t, "dir onto an empty dir", rename("a", 3, "empty"), 0)
	expect(t, "file onto a file", rename("full/y", 3, "file"), 0)
	st, err := h.s.State()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range st.FDs {
		if (e.FD == x && e.Path != "empty/in/x") || (e.FD == in && e.Path != "empty/in") {
			t.Errorf("fd %d path %q after rename", e.FD, e.Path)
		}
	}
	// Relative to a directory descriptor, which follows too.
	op, on := h.str(pathAddr, "x")
	np, nn := h.str(path2Addr, "x2")
	expect(t, "rename below a dir fd", h.call("path_rename", uint64(in), op, on, uint64(in), np, nn), 0)
	if _, err := os.Stat(filepath.Join(dir, "empty", "in", "x2")); err != nil {
		t.Error(err)
	}
	if st, err := h.s.State(); err != nil {
		t.Error(err)
	} else {
		for _, e := range st.FDs {
			if e.FD == x && e.Path != "empty/in/x2" {
				t.Errorf("fd %d path %q after the second rename", e.FD, e.Path)
			}
		}
	}
}

func TestPollOneoff(t *testing.T) {
	h := newHarness(t, Config{})
	sub := func(i uint32, userdata uint64, tag uint8, a uint32, timeout uint64, flags uint16) {
		b, _ := h.mem.Read(bufAddr+i*subscriptionSize, subscriptionSize)
		clear(b)
		binary.LittleEndian.PutUint64(b[0:], userdata)
		b[8] = tag
		binary.LittleEndian.PutUint32(b[16:], a)
		binary.LittleEndian.PutUint64(b[24:], timeout)
		binary.LittleEndian.PutUint16(b[40:], flags)
	}
	const out = 4096
	event := func(i uint32) (uint64, uint16, uint8) {
		b, _ := h.mem.Read(out+i*eventSize, eventSize)
		return binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint16(b[8:]), b[10]
	}

	sub(0, 0xabcdef, eventClock, clockMonotonic, uint64(30*time.Millisecond), 0)
	start := time.Now()
	expect(t, "relative sleep", h.call("poll_oneoff", bufAddr, out, 1, resultAddr), 0)
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("slept %v", d)
	}
	if ud, e, typ := event(0); h.u32(resultAddr) != 1 || ud != 0xabcdef || e != 0 || typ != eventClock {
		t.Errorf("event %x %d %d, %d events", ud, e, typ, h.u32(resultAddr))
	}

	// An absolute deadline on the monotonic clock.
	expect(t, "clock", h.call("clock_time_get", clockMonotonic, 0, resultAddr), 0)
	sub(0, 1, eventClock, clockMonotonic, h.u64(resultAddr)+uint64(20*time.Millisecond), subscriptionClockAbstime)
	start = time.Now()
	expect(t, "absolute sleep", h.call("poll_oneoff", bufAddr, out, 1, resultAddr), 0)
	if d := time.Since(start); d < 15*time.Millisecond || d > 5*time.Second {
		t.Errorf("absolute sleep took %v", d)
	}

	// A ready descriptor ends the poll at once; a bad one is an event error.
	sub(0, 1, eventClock, clockMonotonic, uint64(10*time.Second), 0)
	sub(1, 2, eventFdRead, 0, 0, 0)
	sub(2, 3, eventFdWrite, 77, 0, 0)
	start = time.Now()
	expect(t, "descriptors", h.call("poll_oneoff", bufAddr, out, 3, resultAddr), 0)
	if d := time.Since(start); d > time.Second {
		t.Errorf("descriptor poll took %v", d)
	}
	ud0, e0, typ0 := event(0)
	ud1, e1, typ1 := event(1)
	if h.u32(resultAddr) != 2 || ud0 != 2 || e0 != 0 || typ0 != eventFdRead || ud1 != 3 || errno(e1) != errnoBadf || typ1 != eventFdWrite {
		t.Errorf("events: %d: (%d %d %d) (%d %d %d)", h.u32(resultAddr), ud0, e0, typ0, ud1, e1, typ1)
	}
	expect(t, "no subscriptions", h.call("poll_oneoff", bufAddr, out, 0, resultAddr), errnoInval)
	sub(0, 1, 9, 0, 0, 0)
	expect(t, "bad tag", h.call("poll_oneoff", bufAddr, out, 1, resultAddr), errnoInval)

	// A done context ends the sleep and the module.
	sub(0, 1, eventClock, clockRealtime, uint64(10*time.Second), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start = time.Now()
	func() {
		defer func() {
			var ee *sys.ExitError
			if err, _ := recover().(error); !errors.As(err, &ee) || ee.ExitCode() != sys.ExitCodeDeadlineExceeded {
				t.Errorf("a done context: recovered %v", err)
			}
		}()
		h.callCtx(ctx, "poll_oneoff", bufAddr, out, 1, resultAddr)
	}()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled sleep took %v", d)
	}
}

func TestClocks(t *testing.T) {
	const base uint64 = 1 << 50
	s, err := Restore(Config{}, snapshot.WASIState{MonotonicNanos: base, NextFD: 3})
	if err != nil {
		t.Fatal(err)
	}
	h := harnessFor(t, s)
	var last uint64
	for range 3 {
		expect(t, "monotonic", h.call("clock_time_get", clockMonotonic, 0, resultAddr), 0)
		if now := h.u64(resultAddr); now < base || now < last {
			t.Errorf("monotonic %d after %d (base %d)", now, last, base)
		} else {
			last = now
		}
	}
	expect(t, "cputime", h.call("clock_time_get", clockProcessCputimeID, 0, resultAddr), 0)
	if h.u64(resultAddr) < last {
		t.Errorf("process cputime %d", h.u64(resultAddr))
	}
	expect(t, "realtime", h.call("clock_time_get", clockRealtime, 0, resultAddr), 0)
	if d := time.Since(time.Unix(0, int64(h.u64(resultAddr)))); d < 0 || d > time.Minute {
		t.Errorf("realtime off by %v", d)
	}
	expect(t, "bad clock", h.call("clock_time_get", 9, 0, resultAddr), errnoInval)
	expect(t, "resolution", h.call("clock_res_get", clockMonotonic, resultAddr), 0)
	if h.u64(resultAddr) != 1 {
		t.Errorf("resolution %d", h.u64(resultAddr))
	}
	st, err := s.State()
	if err != nil || st.MonotonicNanos < last {
		t.Errorf("State clock %d after %d: %v", st.MonotonicNanos, last, err)
	}
}

func TestRestoreRefuses(t *testing.T) {
	good := func() (Config, snapshot.WASIState) {
		return Config{Preopens: []PreopenDir{{"/", t.TempDir()}}},
			snapshot.WASIState{
				Preopens: []snapshot.Preopen{{FD: 3, GuestPath: "/", Files: []snapshot.File{
					{Path: "d", Type: snapshot.Directory, Mode: 0o755},
					{Path: "d/f", Type: snapshot.Regular, Mode: 0o644, Data: []byte("f")},
				}}},
				FDs:    []snapshot.FD{{FD: 4, Kind: snapshot.KindFile, Preopen: 3, Path: "d/f", Offset: 1, Read: true}},
				NextFD: 5,
			}
	}
	cfg, st := good()
	s, err := Restore(cfg, st)
	if err != nil {
		t.Fatalf("a good state: %v", err)
	}
	s.Close()
	for name, change := range map[string]func(*Config, *snapshot.WASIState){
		"non-empty dir": func(c *Config, _ *snapshot.WASIState) {
			os.WriteFile(filepath.Join(c.Preopens[0].HostDir, "x"), nil, 0o600)
		},
		"missing dir":      func(c *Config, _ *snapshot.WASIState) { c.Preopens[0].HostDir += "/missing" },
		"other guest path": func(c *Config, _ *snapshot.WASIState) { c.Preopens[0].GuestPath = "/x" },
		"extra preopen":    func(c *Config, _ *snapshot.WASIState) { c.Preopens = append(c.Preopens, PreopenDir{"/x", t.TempDir()}) },
		"wrong next fd":    func(_ *Config, st *snapshot.WASIState) { st.NextFD = 9 },
		"escaping path":    func(_ *Config, st *snapshot.WASIState) { st.Preopens[0].Files[1].Path = "../f" },
		"child first": func(_ *Config, st *snapshot.WASIState) {
			f := st.Preopens[0].Files
			f[0], f[1] = f[1], f[0]
		},
		"bad mode":        func(_ *Config, st *snapshot.WASIState) { st.Preopens[0].Files[1].Mode = 0o10000 },
		"bad type":        func(_ *Config, st *snapshot.WASIState) { st.Preopens[0].Files[1].Type = 9 },
		"fd of a missing": func(_ *Config, st *snapshot.WASIState) { st.FDs[0].Path = "d/g" },
		"fd kind":         func(_ *Config, st *snapshot.WASIState) { st.FDs[0].Kind = snapshot.KindDir },
		"fd on stdio":     func(_ *Config, st *snapshot.WASIState) { st.FDs[0].FD = 1 },
		"fd on preopen":   func(_ *Config, st *snapshot.WASIState) { st.FDs[0].FD = 3 },
		"fd preopen":      func(_ *Config, st *snapshot.WASIState) { st.FDs[0].Preopen = 7 },
		"preopen fd":      func(_ *Config, st *snapshot.WASIState) { st.Preopens[0].FD = 2 },
		"env":             func(_ *Config, st *snapshot.WASIState) { st.Env = []string{"noequals"} },
	} {
		cfg, st := good()
		change(&cfg, &st)
		if s, err := Restore(cfg, st); err == nil {
			s.Close()
			t.Errorf("%s: restored", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
