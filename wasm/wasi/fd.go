package wasi

import (
	"context"
	"encoding/binary"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// kind is what a descriptor refers to.
type kind uint8

// The kinds of descriptor.
const (
	kindStdin kind = iota + 1
	kindStdout
	kindStderr
	kindPreopen
	kindFile
	kindDir
)

// preopen is a preopened directory.
type preopen struct {
	fd        uint32
	guestPath string
	hostDir   string
	// root confines every path below the directory.
	root *os.Root
}

// descriptor is an entry of the descriptor table.
type descriptor struct {
	kind kind
	// pre is the preopen the file or directory lies under, and path its
	// slash-separated path relative to it ("." for the preopen itself).
	pre  *preopen
	path string
	// file is the open host file; nil for the standard streams.
	file *os.File
	// read and write say what file was opened for.
	read, write bool
	// flags are the WASI fdflags.
	flags uint16
	// rightsBase and rightsInheriting are the rights path_open was asked
	// for; they move with the descriptor.
	rightsBase, rightsInheriting uint64
	// dirents is a directory's listing for fd_readdir, read when the guest
	// starts at cookie 0.
	dirents []dirent
}

// isDir reports whether d is a directory.
func (d *descriptor) isDir() bool { return d.kind == kindPreopen || d.kind == kindDir }

// isStdio reports whether d is a standard stream.
func (d *descriptor) isStdio() bool { return d.kind <= kindStderr }

// dirent is a directory entry as fd_readdir returns it.
type dirent struct {
	name     string
	ino      uint64
	filetype uint8
}

// The WASI fdflags.
const (
	fdflagAppend   uint16 = 1 << 0
	fdflagDsync    uint16 = 1 << 1
	fdflagNonblock uint16 = 1 << 2
	fdflagRsync    uint16 = 1 << 3
	fdflagSync     uint16 = 1 << 4

	fdflagsAll  = fdflagAppend | fdflagDsync | fdflagNonblock | fdflagRsync | fdflagSync
	fdflagsSync = fdflagDsync | fdflagRsync | fdflagSync
)

// The WASI filetypes.
const (
	filetypeUnknown         uint8 = 0
	filetypeBlockDevice     uint8 = 1
	filetypeCharacterDevice uint8 = 2
	filetypeDirectory       uint8 = 3
	filetypeRegularFile     uint8 = 4
	filetypeSocketStream    uint8 = 6
	filetypeSymbolicLink    uint8 = 7
)

// filetypeStdio is the filetype of the standard streams. As in wazero for
// streams that are not host files, they are block devices: devices, but
// not terminals (to wasi-libc's isatty, or Go's os.ModeCharDevice test),
// since what the guest writes goes to logs.
const filetypeStdio = filetypeBlockDevice

// The WASI rights.
const (
	rightFdDatasync uint64 = 1 << iota
	rightFdRead
	rightFdSeek
	rightFdstatSetFlags
	rightFdSync
	rightFdTell
	rightFdWrite
	rightFdAdvise
	rightFdAllocate
	rightPathCreateDirectory
	rightPathCreateFile
	rightPathLinkSource
	rightPathLinkTarget
	rightPathOpen
	rightFdReaddir
	rightPathReadlink
	rightPathRenameSource
	rightPathRenameTarget
	rightPathFilestatGet
	rightPathFilestatSetSize
	rightPathFilestatSetTimes
	rightFdFilestatGet
	rightFdFilestatSetSize
	rightFdFilestatSetTimes
	rightPathSymlink
	rightPathRemoveDirectory
	rightPathUnlinkFile
	rightPollFdReadwrite
)

// fileRights are the rights a regular file can have, and dirRights those
// of a directory (as wazero, no seek on directories).
const (
	fileRights = rightFdDatasync | rightFdRead | rightFdSeek | rightFdstatSetFlags |
		rightFdSync | rightFdTell | rightFdWrite | rightFdAdvise | rightFdAllocate |
		rightFdFilestatGet | rightFdFilestatSetSize | rightFdFilestatSetTimes |
		rightPollFdReadwrite
	dirRights = rightFdDatasync | rightFdstatSetFlags | rightFdSync |
		rightPathCreateDirectory | rightPathCreateFile | rightPathLinkSource |
		rightPathLinkTarget | rightPathOpen | rightFdReaddir | rightPathReadlink |
		rightPathRenameSource | rightPathRenameTarget | rightPathFilestatGet |
		rightPathFilestatSetSize | rightPathFilestatSetTimes | rightFdFilestatGet |
		rightFdFilestatSetTimes | rightPathSymlink | rightPathRemoveDirectory |
		rightPathUnlinkFile
)

// The fstflags of fd_filestat_set_times and path_filestat_set_times.
const (
	fstflagAtim    = 1 << 0
	fstflagAtimNow = 1 << 1
	fstflagMtim    = 1 << 2
	fstflagMtimNow = 1 << 3
)

// The sizes of the structures the guest passes or receives.
const (
	fdstatSize   = 24
	filestatSize = 64
	direntSize   = 24
	iovecSize    = 8
)

// lookup returns descriptor fd, or EBADF.
func (s *System) lookup(fd uint32) (*descriptor, errno) {
	d, ok := s.fds[fd]
	if !ok {
		return nil, errnoBadf
	}
	return d, errnoSuccess
}

// nextFD returns the descriptor path_open hands out next: the lowest free
// one above the standard streams, as in POSIX and wazero.
func (s *System) nextFD() uint32 {
	fd := uint32(3)
	for s.fds[fd] != nil {
		fd++
	}
	return fd
}

// filetype returns the WASI filetype of a file of mode m.
func filetype(m fs.FileMode) uint8 {
	switch {
	case m.IsRegular():
		return filetypeRegularFile
	case m.IsDir():
		return filetypeDirectory
	case m&fs.ModeSymlink != 0:
		return filetypeSymbolicLink
	case m&fs.ModeCharDevice != 0:
		return filetypeCharacterDevice
	case m&fs.ModeDevice != 0:
		return filetypeBlockDevice
	case m&fs.ModeSocket != 0:
		return filetypeSocketStream
	}
	return filetypeUnknown
}

// writeFilestat writes the filestat of a file with FileInfo fi into buf.
// atim and ctim are mtim: the os package has no portable access to them.
func writeFilestat(buf []byte, fi fs.FileInfo) {
	dev, ino, nlink := sysStat(fi)
	mtim := uint64(fi.ModTime().UnixNano())
	clear(buf[:filestatSize])
	binary.LittleEndian.PutUint64(buf[0:], dev)
	binary.LittleEndian.PutUint64(buf[8:], ino)
	buf[16] = filetype(fi.Mode())
	binary.LittleEndian.PutUint64(buf[24:], nlink)
	binary.LittleEndian.PutUint64(buf[32:], uint64(fi.Size()))
	binary.LittleEndian.PutUint64(buf[40:], mtim)
	binary.LittleEndian.PutUint64(buf[48:], mtim)
	binary.LittleEndian.PutUint64(buf[56:], mtim)
}

// fdAdvise is fd_advise: advice is accepted and ignored, as in wazero.
func (s *System) fdAdvise(_ context.Context, _ api.Module, p []uint64) errno {
	if _, e := s.lookup(uint32(p[0])); e != 0 {
		return e
	}
	if advice := uint32(p[3]); advice > 5 {
		return errnoInval
	}
	return errnoSuccess
}

// fdAllocate is fd_allocate: it grows the file to offset+len if smaller.
func (s *System) fdAllocate(_ context.Context, _ api.Module, p []uint64) errno {
	d, e := s.regularFile(uint32(p[0]))
	if e != 0 {
		return e
	}
	offset, length := p[1], p[2]
	if offset > math.MaxInt64 || length > math.MaxInt64-offset {
		return errnoFbig
	}
	fi, err := d.file.Stat()
	if err != nil {
		return toErrno(err)
	}
	if end := int64(offset + length); fi.Size() < end {
		return toErrno(d.file.Truncate(end))
	}
	return errnoSuccess
}

// regularFile returns descriptor fd if it is a file below a preopen.
func (s *System) regularFile(fd uint32) (*descriptor, errno) {
	d, e := s.lookup(fd)
	switch {
	case e != 0:
		return nil, e
	case d.isDir():
		return nil, errnoIsdir
	case d.isStdio():
		return nil, errnoInval
	}
	return d, errnoSuccess
}

// fdClose is fd_close. Preopens cannot be closed (ENOTSUP): a snapshot
// has no room for a closed one.
func (s *System) fdClose(_ context.Context, _ api.Module, p []uint64) errno {
	fd := uint32(p[0])
	d, e := s.lookup(fd)
	if e != 0 {
		return e
	}
	if d.kind == kindPreopen {
		return errnoNotsup
	}
	delete(s.fds, fd)
	if d.file != nil {
		return toErrno(d.file.Close())
	}
	return errnoSuccess
}

// fdSync is fd_sync and fd_datasync. On a standard stream it does nothing.
func (s *System) fdSync(_ context.Context, _ api.Module, p []uint64) errno {
	d, e := s.lookup(uint32(p[0]))
	if e != 0 {
		return e
	}
	if d.file == nil {
		return errnoSuccess
	}
	return toErrno(d.file.Sync())
}

// fdstat returns the filetype, fdflags and rights fd_fdstat_get reports
// for d. The rights are what d can do, whatever path_open asked for.
func (d *descriptor) fdstat() (ft uint8, flags uint16, base, inheriting uint64, e errno) {
	switch d.kind {
	case kindStdin, kindStdout, kindStderr:
		return filetypeStdio, 0, fileRights, 0, errnoSuccess
	case kindPreopen, kindDir:
		return filetypeDirectory, d.flags, dirRights, fileRights | dirRights, errnoSuccess
	}
	fi, err := d.file.Stat()
	if err != nil {
		return 0, 0, 0, 0, toErrno(err)
	}
	base = fileRights
	if !d.read {
		base &^= rightFdRead
	}
	if !d.write {
		base &^= rightFdWrite | rightFdAllocate | rightFdFilestatSetSize
	}
	return filetype(fi.Mode()), d.flags, base, 0, errnoSuccess
}

// fdFdstatGet is fd_fdstat_get.
func (s *System) fdFdstatGet(_ context.Context, mod api.Module, p []uint64) errno {
	buf, ok := mod.Memory().Read(uint32(p[1]), fdstatSize)
	if !ok {
		return errnoFault
	}
	d, e := s.lookup(uint32(p[0]))
	if e != 0 {
		return e
	}
	ft, flags, base, inheriting, e := d.fdstat()
	if e != 0 {
		return e
	}
	clear(buf)
	buf[0] = ft
	binary.LittleEndian.PutUint16(buf[2:], flags)
	binary.LittleEndian.PutUint64(buf[8:], base)
	binary.LittleEndian.PutUint64(buf[16:], inheriting)
	return errnoSuccess
}

// fdFdstatSetFlags is fd_fdstat_set_flags. A file takes append and
// nonblock, a directory nonblock (append is ignored); the synchronous
// flags can only be kept as path_open set them (EINVAL otherwise, as
// wazero). The standard streams accept the call but keep no flags, since
// a snapshot has no room for them: the guest sees the same before and
// after a move.
func (s *System) fdFdstatSetFlags(_ context.Context, _ api.Module, p []uint64) errno {
	flags := uint16(p[1])
	d, e := s.lookup(uint32(p[0]))
	if e != 0 {
		return e
	}
	if uint32(p[1])&^uint32(fdflagsAll) != 0 || flags&fdflagsSync != d.flags&fdflagsSync {
		return errnoInval
	}
	switch d.kind {
	case kindFile:
		d.flags = flags
	case kindDir, kindPreopen:
		d.flags = d.flags&^fdflagNonblock | flags&fdflagNonblock
	}
	return errnoSuccess
}

// fdFdstatSetRights is fd_fdstat_set_rights: rights were dropped from
// WASI, and wazero does not implement it either.
func (s *System) fdFdstatSetRights(_ context.Context, _ api.Module, p []uint64) errno {
	if _, e := s.lookup(uint32(p[0])); e != 0 {
		return e
	}
	return errnoNosys
}

// fdFilestatGet is fd_filestat_get.
func (s *System) fdFilestatGet(_ context.Context, mod api.Module, p []uint64) errno {
	buf, ok := mod.Memory().Read(uint32(p[1]), filestatSize)
	if !ok {
		return errnoFault
	}
	d, e := s.lookup(uint32(p[0]))
	if e != 0 {
		return e
	}
	if d.isStdio() {
		clear(buf)
		buf[16] = filetypeStdio
		binary.LittleEndian.PutUint64(buf[24:], 1)
		return errnoSuccess
	}
	fi, err := d.file.Stat()
	if err != nil {
		return toErrno(err)
	}
	writeFilestat(buf, fi)
	return errnoSuccess
}

// fdFilestatSetSize is fd_filestat_set_size.
func (s *System) fdFilestatSetSize(_ context.Context, _ api.Module, p []uint64) errno {
	d, e := s.regularFile(uint32(p[0]))
	if e != 0 {
		return e
	}
	if p[1] > math.MaxInt64 {
		return errnoFbig
	}
	return toErrno(d.file.Truncate(int64(p[1])))
}

// fdFilestatSetTimes is fd_filestat_set_times. The os package sets times
// by path only, so this goes by the descriptor's path, after checking it
// still names the descriptor's file (ESTALE otherwise).
func (s *System) fdFilestatSetTimes(_ context.Context, _ api.Module, p []uint64) errno {
	d, e := s.lookup(uint32(p[0]))
	if e != 0 {
		return e
	}
	atime, mtime, e := toTimes(p[1], p[2], uint16(p[3]))
	if e != 0 {
		return e
	}
	if d.isStdio() {
		return errnoNotsup
	}
	if e := d.checkPath(); e != 0 {
		return e
	}
	return toErrno(d.pre.root.Chtimes(d.path, atime, mtime))
}

// checkPath returns ESTALE unless d's path still names d's file.
func (d *descriptor) checkPath() errno {
	cur, err := d.file.Stat()
	if err != nil {
		return toErrno(err)
	}
	at, err := d.pre.root.Stat(d.path)
	if err != nil || !os.SameFile(cur, at) {
		return errnoStale
	}
	return errnoSuccess
}

// toTimes turns the atim, mtim and fstflags of a set_times call into the
// times os.Chtimes takes, the zero time leaving a time unchanged.
func toTimes(atim, mtim uint64, fstflags uint16) (atime, mtime time.Time, e errno) {
	if fstflags&^(fstflagAtim|fstflagAtimNow|fstflagMtim|fstflagMtimNow) != 0 {
		return atime, mtime, errnoInval
	}
	now := time.Now()
	switch fstflags & (fstflagAtim | fstflagAtimNow) {
	case fstflagAtim | fstflagAtimNow:
		return atime, mtime, errnoInval
	case fstflagAtim:
		atime = time.Unix(0, int64(atim))
	case fstflagAtimNow:
		atime = now
	}
	switch fstflags & (fstflagMtim | fstflagMtimNow) {
	case fstflagMtim | fstflagMtimNow:
		return atime, mtime, errnoInval
	case fstflagMtim:
		mtime = time.Unix(0, int64(mtim))
	case fstflagMtimNow:
		mtime = now
	}
	return atime, mtime, errnoSuccess
}

// fdPrestatGet is fd_prestat_get: a preopen's tag (0, a directory) and
// the length of its guest path. Any other descriptor is EBADF, which ends
// the guest's scan for preopens.
func (s *System) fdPrestatGet(_ context.Context, mod api.Module, p []uint64) errno {
	d, e := s.lookup(uint32(p[0]))
	if e != 0 {
		return e
	}
	if d.kind != kindPreopen {
		return errnoBadf
	}
	if !mod.Memory().WriteUint64Le(uint32(p[1]), uint64(len(d.pre.guestPath))<<32) {
		return errnoFault
	}
	return errnoSuccess
}

// fdPrestatDirName is fd_prestat_dir_name: it writes path_len bytes of
// the preopen's guest path, ENAMETOOLONG if it has fewer (as wazero).
func (s *System) fdPrestatDirName(_ context.Context, mod api.Module, p []uint64) errno {
	d, e := s.lookup(uint32(p[0]))
	if e != 0 {
		return e
	}
	if d.kind != kindPreopen {
		return errnoBadf
	}
	name, n := d.pre.guestPath, uint32(p[2])
	if uint32(len(name)) < n {
		return errnoNametoolong
	}
	if !mod.Memory().WriteString(uint32(p[1]), name[:n]) {
		return errnoFault
	}
	return errnoSuccess
}

// fdRead is fd_read.
func (s *System) fdRead(_ context.Context, mod api.Module, p []uint64) errno {
	return s.readv(mod, uint32(p[0]), uint32(p[1]), uint32(p[2]), -1, uint32(p[3]))
}

// fdPread is fd_pread.
func (s *System) fdPread(_ context.Context, mod api.Module, p []uint64) errno {
	if p[3] > math.MaxInt64 {
		return errnoInval
	}
	return s.readv(mod, uint32(p[0]), uint32(p[1]), uint32(p[2]), int64(p[3]), uint32(p[4]))
}

// readv reads from descriptor fd into the iovec array at iovs, at offset
// if it is not negative (leaving the file position alone), and writes the
// byte count at result.
func (s *System) readv(mod api.Module, fd, iovs, iovsLen uint32, offset int64, result uint32) errno {
	d, e := s.lookup(fd)
	if e != 0 {
		return e
	}
	var read func([]byte) (int, error)
	switch d.kind {
	case kindStdin:
		if offset >= 0 {
			return errnoSpipe
		}
		read = s.readStdin
	case kindStdout, kindStderr:
		return errnoBadf
	case kindPreopen, kindDir:
		return errnoIsdir
	default:
		if !d.read {
			return errnoBadf
		}
		read = d.file.Read
		if offset >= 0 {
			read = func(b []byte) (int, error) {
				n, err := d.file.ReadAt(b, offset)
				offset += int64(n)
				return n, err
			}
		}
	}
	mem := mod.Memory()
	if _, ok := mem.Read(result, 4); !ok {
		return errnoFault
	}
	bufs, e := iovecs(mem, iovs, iovsLen)
	if e != 0 {
		return e
	}
	var total uint32
	for _, b := range bufs {
		n, err := read(b)
		total += uint32(n)
		if err != nil && err != io.EOF {
			if total > 0 {
				break
			}
			return toErrno(err)
		}
		if n < len(b) {
			break
		}
	}
	mem.WriteUint32Le(result, total)
	return errnoSuccess
}

// readStdin reads from the standard input: nothing if there is none.
func (s *System) readStdin(b []byte) (int, error) {
	if s.stdin == nil || len(b) == 0 {
		return 0, io.EOF
	}
	return s.stdin.Read(b)
}

// iovecs returns the buffers of the iovec (or ciovec) array at iovs, with
// empty ones left out; EFAULT if any lies outside memory.
func iovecs(mem api.Memory, iovs, iovsLen uint32) ([][]byte, errno) {
	if uint64(iovsLen)*iovecSize > math.MaxUint32 {
		return nil, errnoFault
	}
	arr, ok := mem.Read(iovs, iovsLen*iovecSize)
	if !ok {
		return nil, errnoFault
	}
	bufs := make([][]byte, 0, iovsLen)
	var total uint64
	for i := uint32(0); i < iovsLen; i++ {
		ptr := binary.LittleEndian.Uint32(arr[i*iovecSize:])
		n := binary.LittleEndian.Uint32(arr[i*iovecSize+4:])
		b, ok := mem.Read(ptr, n)
		if !ok {
			return nil, errnoFault
		}
		if total += uint64(n); total > math.MaxUint32 {
			return nil, errnoInval
		}
		if n > 0 {
			bufs = append(bufs, b)
		}
	}
	return bufs, errnoSuccess
}

// fdWrite is fd_write.
func (s *System) fdWrite(_ context.Context, mod api.Module, p []uint64) errno {
	return s.writev(mod, uint32(p[0]), uint32(p[1]), uint32(p[2]), -1, uint32(p[3]))
}

// fdPwrite is fd_pwrite.
func (s *System) fdPwrite(_ context.Context, mod api.Module, p []uint64) errno {
	if p[3] > math.MaxInt64 {
		return errnoInval
	}
	return s.writev(mod, uint32(p[0]), uint32(p[1]), uint32(p[2]), int64(p[3]), uint32(p[4]))
}

// writev writes the ciovec array at iovs to descriptor fd, at offset if it
// is not negative (leaving the file position alone), and writes the byte
// count at result. A file with the append flag is written at its end.
func (s *System) writev(mod api.Module, fd, iovs, iovsLen uint32, offset int64, result uint32) errno {
	d, e := s.lookup(fd)
	if e != 0 {
		return e
	}
	var write func([]byte) (int, error)
	switch d.kind {
	case kindStdout, kindStderr:
		if offset >= 0 {
			return errnoSpipe
		}
		w := s.stdout
		if d.kind == kindStderr {
			w = s.stderr
		}
		if w == nil {
			w = io.Discard
		}
		write = w.Write
	case kindStdin:
		return errnoBadf
	case kindPreopen, kindDir:
		return errnoBadf
	default:
		if !d.write {
			return errnoBadf
		}
		write = d.file.Write
		if offset >= 0 {
			write = func(b []byte) (int, error) {
				n, err := d.file.WriteAt(b, offset)
				offset += int64(n)
				return n, err
			}
		}
	}
	mem := mod.Memory()
	if _, ok := mem.Read(result, 4); !ok {
		return errnoFault
	}
	bufs, e := iovecs(mem, iovs, iovsLen)
	if e != 0 {
		return e
	}
	if offset < 0 && d.kind == kindFile && d.flags&fdflagAppend != 0 {
		if _, err := d.file.Seek(0, io.SeekEnd); err != nil {
			return toErrno(err)
		}
	}
	var total uint32
	for _, b := range bufs {
		n, err := write(b)
		total += uint32(n)
		if err != nil {
			if total > 0 {
				break
			}
			return toErrno(err)
		}
	}
	mem.WriteUint32Le(result, total)
	return errnoSuccess
}

// fdReaddir is fd_readdir. Entries are ".", ".." and then the directory's
// in lexical order, so that a cookie means the same entry after a move;
// cookie n is the n-th entry. The listing is read afresh at cookie 0.
func (s *System) fdReaddir(_ context.Context, mod api.Module, p []uint64) errno {
	fd, bufPtr, bufLen, cookie, result := uint32(p[0]), uint32(p[1]), uint32(p[2]), p[3], uint32(p[4])
	d, e := s.lookup(fd)
	if e != 0 {
		return e
	}
	if !d.isDir() {
		// As wazero: EBADF rather than ENOTDIR, which some guests mishandle.
		return errnoBadf
	}
	if bufLen < direntSize {
		return errnoInval
	}
	mem := mod.Memory()
	buf, ok := mem.Read(bufPtr, bufLen)
	if !ok {
		return errnoFault
	}
	if _, ok := mem.Read(result, 4); !ok {
		return errnoFault
	}
	if cookie == 0 || d.dirents == nil {
		list, err := readDirents(d.file)
		if err != nil {
			return toErrno(err)
		}
		d.dirents = list
	}
	pos := uint32(0)
	for i := cookie; i < uint64(len(d.dirents)) && pos < bufLen; i++ {
		ent := d.dirents[i]
		var hdr [direntSize]byte
		binary.LittleEndian.PutUint64(hdr[0:], i+1)
		binary.LittleEndian.PutUint64(hdr[8:], ent.ino)
		binary.LittleEndian.PutUint32(hdr[16:], uint32(len(ent.name)))
		hdr[20] = ent.filetype
		pos += uint32(copy(buf[pos:], hdr[:]))
		pos += uint32(copy(buf[pos:], ent.name))
	}
	mem.WriteUint32Le(result, pos)
	return errnoSuccess
}

// readDirents returns the listing of directory f for fd_readdir.
func readDirents(f *os.File) ([]dirent, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	var dotIno uint64
	if fi, err := f.Stat(); err == nil {
		_, dotIno, _ = sysStat(fi)
	}
	list := make([]dirent, 0, len(entries)+2)
	list = append(list,
		dirent{name: ".", ino: dotIno, filetype: filetypeDirectory},
		dirent{name: "..", filetype: filetypeDirectory})
	for _, ent := range entries {
		var ino uint64
		if fi, err := ent.Info(); err == nil {
			_, ino, _ = sysStat(fi)
		}
		list = append(list, dirent{name: ent.Name(), ino: ino, filetype: filetype(ent.Type())})
	}
	return list, nil
}

// fdRenumber is fd_renumber: it moves descriptor fd to number to, closing
// whatever was there. Preopens can be neither moved nor replaced
// (ENOTSUP, as wazero).
func (s *System) fdRenumber(_ context.Context, _ api.Module, p []uint64) errno {
	from, to := uint32(p[0]), uint32(p[1])
	d, e := s.lookup(from)
	if e != 0 {
		return e
	}
	if to > math.MaxInt32 {
		return errnoBadf
	}
	if d.kind == kindPreopen {
		return errnoNotsup
	}
	if from == to {
		return errnoSuccess
	}
	if old, ok := s.fds[to]; ok {
		if old.kind == kindPreopen {
			return errnoNotsup
		}
		if old.file != nil {
			_ = old.file.Close()
		}
	}
	s.fds[to] = d
	delete(s.fds, from)
	return errnoSuccess
}

// fdSeek is fd_seek.
func (s *System) fdSeek(_ context.Context, mod api.Module, p []uint64) errno {
	return s.seek(mod, uint32(p[0]), int64(p[1]), uint32(p[2]), uint32(p[3]))
}

// fdTell is fd_tell.
func (s *System) fdTell(_ context.Context, mod api.Module, p []uint64) errno {
	return s.seek(mod, uint32(p[0]), 0, io.SeekCurrent, uint32(p[1]))
}

// seek moves descriptor fd's position and writes the new one at result.
func (s *System) seek(mod api.Module, fd uint32, offset int64, whence, result uint32) errno {
	d, e := s.lookup(fd)
	if e != 0 {
		return e
	}
	switch {
	case d.isStdio():
		return errnoSpipe
	case d.isDir():
		// POSIX allows it, but wazero and wasi-testsuite do not.
		return errnoIsdir
	case whence > io.SeekEnd:
		return errnoInval
	}
	mem := mod.Memory()
	if _, ok := mem.Read(result, 8); !ok {
		return errnoFault
	}
	pos, err := d.file.Seek(offset, int(whence))
	if err != nil {
		return toErrno(err)
	}
	mem.WriteUint64Le(result, uint64(pos))
	return errnoSuccess
}
