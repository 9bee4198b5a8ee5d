package wasi

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/tetratelabs/wazero/api"
)

// The WASI oflags of path_open.
const (
	oflagCreat     = 1 << 0
	oflagDirectory = 1 << 1
	oflagExcl      = 1 << 2
	oflagTrunc     = 1 << 3
)

// lookupSymlinkFollow is the only WASI lookupflag.
const lookupSymlinkFollow = 1 << 0

// pathArg reads the path at ptr, of n bytes, which the guest gives
// relative to directory descriptor fd, and returns that descriptor and
// the path relative to its preopen: cleaned, "." for the preopen itself,
// with a trailing slash kept (it asks for a directory). A path that is
// absolute or climbs out of the directory with ".." is EPERM, as in
// wazero; os.Root confines the rest, symlinks included.
func (s *System) pathArg(mem api.Memory, fd, ptr, n uint32) (*descriptor, string, errno) {
	b, ok := mem.Read(ptr, n)
	if !ok {
		return nil, "", errnoFault
	}
	d, e := s.lookup(fd)
	if e != 0 {
		return nil, "", e
	}
	if !d.isDir() {
		return nil, "", errnoNotdir
	}
	rel, e := joinPath(d.path, string(b))
	return d, rel, e
}

// joinPath returns name, a guest path relative to dir, relative to dir's
// preopen instead (see pathArg).
func joinPath(dir, name string) (string, errno) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", errnoInval
	}
	clean := path.Clean(name)
	if !fs.ValidPath(clean) {
		return "", errnoPerm
	}
	rel := clean
	switch {
	case dir == ".":
	case clean == ".":
		rel = dir
	default:
		rel = dir + "/" + clean
	}
	if strings.HasSuffix(name, "/") && rel != "." {
		rel += "/"
	}
	return rel, errnoSuccess
}

// fdPath returns the path a descriptor opened at rel records: rel without
// its trailing slash.
func fdPath(rel string) string {
	return strings.TrimSuffix(rel, "/")
}

// pathCreateDirectory is path_create_directory. Directories are created
// with mode 0700, as in wazero.
func (s *System) pathCreateDirectory(_ context.Context, mod api.Module, p []uint64) errno {
	d, rel, e := s.pathArg(mod.Memory(), uint32(p[0]), uint32(p[1]), uint32(p[2]))
	if e != 0 {
		return e
	}
	return toErrno(d.pre.root.Mkdir(rel, 0o700))
}

// pathFilestatGet is path_filestat_get.
func (s *System) pathFilestatGet(_ context.Context, mod api.Module, p []uint64) errno {
	mem := mod.Memory()
	buf, ok := mem.Read(uint32(p[4]), filestatSize)
	if !ok {
		return errnoFault
	}
	d, rel, e := s.pathArg(mem, uint32(p[0]), uint32(p[2]), uint32(p[3]))
	if e != 0 {
		return e
	}
	stat := d.pre.root.Lstat
	if uint32(p[1])&lookupSymlinkFollow != 0 {
		stat = d.pre.root.Stat
	}
	fi, err := stat(rel)
	if err != nil {
		return toErrno(err)
	}
	writeFilestat(buf, fi)
	return errnoSuccess
}

// pathFilestatSetTimes is path_filestat_set_times. Without
// symlink_follow, a symlink's own times are set where the host can
// (ENOTSUP elsewhere); an omitted time of a symlink becomes its
// modification time, the only one filestat reports.
func (s *System) pathFilestatSetTimes(_ context.Context, mod api.Module, p []uint64) errno {
	d, rel, e := s.pathArg(mod.Memory(), uint32(p[0]), uint32(p[2]), uint32(p[3]))
	if e != 0 {
		return e
	}
	atime, mtime, e := toTimes(p[4], p[5], uint16(p[6]))
	if e != 0 {
		return e
	}
	root := d.pre.root
	if uint32(p[1])&lookupSymlinkFollow == 0 {
		fi, err := root.Lstat(rel)
		if err != nil {
			return toErrno(err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if atime.IsZero() {
				atime = fi.ModTime()
			}
			if mtime.IsZero() {
				mtime = fi.ModTime()
			}
			return toErrno(lchtimes(root, rel, atime, mtime))
		}
	}
	return toErrno(root.Chtimes(rel, atime, mtime))
}

// pathLink is path_link. Both paths must lie in the same preopen (EXDEV).
func (s *System) pathLink(_ context.Context, mod api.Module, p []uint64) errno {
	mem := mod.Memory()
	od, oldRel, e := s.pathArg(mem, uint32(p[0]), uint32(p[2]), uint32(p[3]))
	if e != 0 {
		return e
	}
	nd, newRel, e := s.pathArg(mem, uint32(p[4]), uint32(p[5]), uint32(p[6]))
	if e != 0 {
		return e
	}
	if od.pre != nd.pre {
		return errnoXdev
	}
	return toErrno(od.pre.root.Link(oldRel, newRel))
}

// pathOpen is path_open. Files are created with mode 0600, as in wazero.
// As in wazero, whether a file is opened for reading, writing or both
// follows the fd_read and fd_write rights asked for, or else the oflags
// and fdflags. The append flag is carried out by fd_write (seeking to the
// end before each write) rather than by the host, so that
// fd_fdstat_set_flags can change it; the synchronous flags all become the
// host's O_SYNC.
func (s *System) pathOpen(_ context.Context, mod api.Module, p []uint64) errno {
	dirflags, oflags, rights, inheriting, fdflags := uint32(p[1]), uint32(p[4]), p[5], p[6], uint32(p[7])
	result := uint32(p[8])
	mem := mod.Memory()
	d, rel, e := s.pathArg(mem, uint32(p[0]), uint32(p[2]), uint32(p[3]))
	if e != 0 {
		return e
	}
	if uint32(p[3]) == 0 || fdflags&^uint32(fdflagsAll) != 0 {
		return errnoInval
	}
	if _, ok := mem.Read(result, 4); !ok {
		return errnoFault
	}
	wantDir := oflags&oflagDirectory != 0
	if wantDir && oflags&oflagCreat != 0 {
		return errnoInval // path_create_directory is for that
	}

	var read, write bool
	switch {
	case rights&(rightFdRead|rightFdWrite) == rightFdRead|rightFdWrite:
		read, write = true, true
	case rights&rightFdWrite != 0:
		write = true
	case rights&rightFdRead != 0:
		read = true
	case oflags&(oflagCreat|oflagTrunc) != 0 || fdflags&uint32(fdflagAppend) != 0:
		read, write = true, true
	default:
		read = true
	}
	flag := hostFlags(read, write, uint16(fdflags))
	if oflags&oflagCreat != 0 {
		flag |= os.O_CREATE
		if oflags&oflagExcl != 0 {
			flag |= os.O_EXCL
		}
	}
	if oflags&oflagTrunc != 0 {
		flag |= os.O_TRUNC
	}

	root := d.pre.root
	if dirflags&lookupSymlinkFollow == 0 {
		// os.Root follows a final symlink whatever the flags: refuse it
		// here, as O_NOFOLLOW would.
		if fi, err := root.Lstat(rel); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			if flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL {
				return errnoExist
			}
			return errnoLoop
		}
	}
	f, err := root.OpenFile(rel, flag, 0o600)
	if err != nil {
		return toErrno(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return toErrno(err)
	}
	nd := &descriptor{
		kind:             kindFile,
		pre:              d.pre,
		path:             fdPath(rel),
		file:             f,
		read:             read,
		write:            write,
		flags:            uint16(fdflags),
		rightsBase:       rights,
		rightsInheriting: inheriting,
	}
	if fi.IsDir() {
		nd.kind = kindDir
		nd.flags &= fdflagNonblock | fdflagsSync
	} else if wantDir || strings.HasSuffix(rel, "/") {
		f.Close()
		return errnoNotdir
	}
	fd := s.nextFD()
	s.fds[fd] = nd
	mem.WriteUint32Le(result, fd)
	return errnoSuccess
}

// hostFlags returns the os.OpenFile flags for a file opened for read
// and/or write with WASI fdflags, without creation flags.
func hostFlags(read, write bool, fdflags uint16) int {
	flag := os.O_RDONLY
	switch {
	case read && write:
		flag = os.O_RDWR
	case write:
		flag = os.O_WRONLY
	}
	if fdflags&fdflagsSync != 0 {
		flag |= os.O_SYNC
	}
	return flag
}

// pathReadlink is path_readlink. A target longer than the buffer is
// ERANGE, as in wazero.
func (s *System) pathReadlink(_ context.Context, mod api.Module, p []uint64) errno {
	bufPtr, bufLen, result := uint32(p[3]), uint32(p[4]), uint32(p[5])
	if uint32(p[2]) == 0 || bufLen == 0 {
		return errnoInval
	}
	mem := mod.Memory()
	d, rel, e := s.pathArg(mem, uint32(p[0]), uint32(p[1]), uint32(p[2]))
	if e != 0 {
		return e
	}
	buf, ok := mem.Read(bufPtr, bufLen)
	if !ok {
		return errnoFault
	}
	if _, ok := mem.Read(result, 4); !ok {
		return errnoFault
	}
	target, err := d.pre.root.Readlink(rel)
	if err != nil {
		return toErrno(err)
	}
	if len(target) > len(buf) {
		return errnoRange
	}
	mem.WriteUint32Le(result, uint32(copy(buf, target)))
	return errnoSuccess
}

// pathRemoveDirectory is path_remove_directory.
func (s *System) pathRemoveDirectory(_ context.Context, mod api.Module, p []uint64) errno {
	d, rel, e := s.pathArg(mod.Memory(), uint32(p[0]), uint32(p[1]), uint32(p[2]))
	if e != 0 {
		return e
	}
	fi, err := d.pre.root.Lstat(rel)
	if err != nil {
		return toErrno(err)
	}
	if !fi.IsDir() {
		return errnoNotdir
	}
	if fdPath(rel) == "." {
		return errnoBusy
	}
	return toErrno(d.pre.root.Remove(rel))
}

// pathUnlinkFile is path_unlink_file.
func (s *System) pathUnlinkFile(_ context.Context, mod api.Module, p []uint64) errno {
	d, rel, e := s.pathArg(mod.Memory(), uint32(p[0]), uint32(p[1]), uint32(p[2]))
	if e != 0 {
		return e
	}
	fi, err := d.pre.root.Lstat(rel)
	if err != nil {
		return toErrno(err)
	}
	if fi.IsDir() {
		return errnoIsdir
	}
	return toErrno(d.pre.root.Remove(rel))
}

// pathRename is path_rename, with POSIX semantics: a directory replaces
// an empty directory, a file replaces a file. Both paths must lie in the
// same preopen (EXDEV). Descriptors open at or below the old path follow
// the rename, so that they stay movable.
func (s *System) pathRename(_ context.Context, mod api.Module, p []uint64) errno {
	mem := mod.Memory()
	od, oldRel, e := s.pathArg(mem, uint32(p[0]), uint32(p[1]), uint32(p[2]))
	if e != 0 {
		return e
	}
	nd, newRel, e := s.pathArg(mem, uint32(p[3]), uint32(p[4]), uint32(p[5]))
	if e != 0 {
		return e
	}
	if od.pre != nd.pre {
		return errnoXdev
	}
	root := od.pre.root
	oldPath, newPath := fdPath(oldRel), fdPath(newRel)
	ofi, err := root.Lstat(oldRel)
	if err != nil {
		return toErrno(err)
	}
	if oldPath == "." || newPath == "." {
		return errnoBusy
	}
	if strings.HasPrefix(newPath, oldPath+"/") {
		return errnoInval
	}
	// os.Root.Rename refuses to replace a directory (EEXIST); rename(2)
	// replaces an empty one by a directory.
	if nfi, err := root.Lstat(newRel); err == nil && nfi.IsDir() {
		switch {
		case os.SameFile(ofi, nfi):
			return errnoSuccess
		case !ofi.IsDir():
			return errnoIsdir
		}
		if e := removeEmptyDir(root, newPath); e != 0 {
			return e
		}
	} else if err == nil && ofi.IsDir() {
		return errnoNotdir
	}
	if err := root.Rename(oldRel, newRel); err != nil {
		return toErrno(err)
	}
	for _, fd := range s.fds {
		if fd.pre != od.pre {
			continue
		}
		if fd.path == oldPath {
			fd.path = newPath
		} else if rest, ok := strings.CutPrefix(fd.path, oldPath+"/"); ok {
			fd.path = newPath + "/" + rest
		}
	}
	return errnoSuccess
}

// removeEmptyDir removes directory name in root if it is empty, and
// returns ENOTEMPTY otherwise.
func removeEmptyDir(root *os.Root, name string) errno {
	f, err := root.Open(name)
	if err != nil {
		return toErrno(err)
	}
	_, err = f.Readdirnames(1)
	f.Close()
	switch {
	case err == nil:
		return errnoNotempty
	case err != io.EOF:
		return toErrno(err)
	}
	return toErrno(root.Remove(name))
}

// pathSymlink is path_symlink. The target is stored as the guest gives
// it; os.Root refuses to follow one that leads out of the preopen, or is
// absolute.
func (s *System) pathSymlink(_ context.Context, mod api.Module, p []uint64) errno {
	mem := mod.Memory()
	targetPtr, targetLen := uint32(p[0]), uint32(p[1])
	target, ok := mem.Read(targetPtr, targetLen)
	if !ok {
		return errnoFault
	}
	d, rel, e := s.pathArg(mem, uint32(p[2]), uint32(p[3]), uint32(p[4]))
	if e != 0 {
		return e
	}
	if targetLen == 0 || uint32(p[4]) == 0 {
		return errnoInval
	}
	if strings.IndexByte(string(target), 0) >= 0 {
		return errnoInval
	}
	return toErrno(d.pre.root.Symlink(string(target), rel))
}
