package wasi

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/podctl/podctl/wasm/snapshot"
)

// ErrNotMovable is wrapped by the errors of State about guest-visible state
// that a snapshot cannot carry: a descriptor whose file was unlinked or
// replaced, a special file in a preopen, a hard link, a standard stream
// moved or closed. The guest is not harmed; it just cannot move until
// that changes.
var ErrNotMovable = errors.New("cannot move")

// notMovable returns an error wrapping ErrNotMovable.
func notMovable(format string, args ...any) error {
	return fmt.Errorf("wasi: "+format+": %w", append(args, ErrNotMovable)...)
}

// State returns everything needed to rebuild the system elsewhere: the
// arguments and environment, the monotonic clock now, the preopens with
// their file trees (read from the host directories, parents first, in
// lexical order), the descriptor table below them and NextFD. Stdout and
// Stderr are left nil: the System does not keep what the guest wrote.
//
// It fails, wrapping ErrNotMovable, if any state cannot move (see the
// package documentation); it never returns a state that would rebuild
// into something the guest could tell from what it had. Call it while the
// guest is stopped, or at least not changing its preopens behind the
// System's back.
func (s *System) State() (snapshot.WASIState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fds == nil {
		return snapshot.WASIState{}, errors.New("wasi: State of a closed System")
	}
	st := snapshot.WASIState{
		Args:           slices.Clone(s.args),
		Env:            slices.Clone(s.env),
		MonotonicNanos: s.clock.now(),
		NextFD:         s.nextFD(),
	}

	stdio := [...]struct {
		kind kind
		name string
	}{{kindStdin, "standard input"}, {kindStdout, "standard output"}, {kindStderr, "standard error"}}
	for fd, want := range stdio {
		d, ok := s.fds[uint32(fd)]
		switch {
		case !ok:
			return snapshot.WASIState{}, notMovable("fd %d (%s) was closed; a snapshot always has the standard streams", fd, want.name)
		case d.kind != want.kind:
			return snapshot.WASIState{}, notMovable("fd %d is not %s: a snapshot holds the standard streams at fds 0-2 only", fd, want.name)
		}
	}

	for _, fd := range slices.Sorted(maps.Keys(s.fds)) {
		d := s.fds[fd]
		switch d.kind {
		case kindStdin, kindStdout, kindStderr:
			if fd > 2 {
				return snapshot.WASIState{}, notMovable("fd %d is a standard stream renumbered: a snapshot holds the standard streams at fds 0-2 only", fd)
			}
		case kindFile, kindDir:
			e, err := d.state(fd)
			if err != nil {
				return snapshot.WASIState{}, err
			}
			st.FDs = append(st.FDs, e)
		}
	}

	seen := make(map[[2]uint64]string)
	for _, p := range s.preopens {
		files, err := p.files(seen)
		if err != nil {
			return snapshot.WASIState{}, err
		}
		st.Preopens = append(st.Preopens, snapshot.Preopen{FD: p.fd, GuestPath: p.guestPath, Files: files})
	}
	return st, nil
}

// state returns the snapshot of descriptor d, number fd, after checking
// that its path still names its file.
func (d *descriptor) state(fd uint32) (snapshot.FD, error) {
	where := fmt.Sprintf("fd %d (%q in preopen %q)", fd, d.path, d.pre.guestPath)
	cur, err := d.file.Stat()
	if err != nil {
		return snapshot.FD{}, fmt.Errorf("wasi: %s: %w", where, err)
	}
	at, err := d.pre.root.Stat(d.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return snapshot.FD{}, notMovable("%s: its file was unlinked or renamed since it was opened, and is reachable by no path", where)
	case err != nil:
		return snapshot.FD{}, notMovable("%s: its path no longer resolves: %v", where, err)
	case !os.SameFile(cur, at):
		return snapshot.FD{}, notMovable("%s: its path now names another file than the one opened (replaced since it was opened)", where)
	}
	e := snapshot.FD{
		FD:               fd,
		Preopen:          d.pre.fd,
		Path:             snapshotPath(d.path),
		Flags:            d.flags,
		Read:             d.read,
		Write:            d.write,
		RightsBase:       d.rightsBase,
		RightsInheriting: d.rightsInheriting,
	}
	switch {
	case d.kind == kindDir && cur.IsDir():
		e.Kind = snapshot.KindDir
	case d.kind == kindFile && cur.Mode().IsRegular():
		e.Kind = snapshot.KindFile
		off, err := d.file.Seek(0, io.SeekCurrent)
		if err != nil {
			return snapshot.FD{}, fmt.Errorf("wasi: %s: reading its offset: %w", where, err)
		}
		e.Offset = uint64(off)
	default:
		return snapshot.FD{}, notMovable("%s: it is a %s, not a regular file or directory", where, describe(cur.Mode()))
	}
	return e, nil
}

// snapshotPath returns a descriptor path as a snapshot holds it: "" for
// the preopen itself.
func snapshotPath(p string) string {
	if p == "." {
		return ""
	}
	return p
}

// files returns the contents of preopen p, parents first, in lexical
// order. seen holds the device and inode of the directories and
// multiply-linked files met so far, in this and earlier preopens, to
// refuse hard links and overlapping preopens: both would come back as
// separate copies.
func (p *preopen) files(seen map[[2]uint64]string) ([]snapshot.File, error) {
	where := func(name string) string { return fmt.Sprintf("preopen %q (%s): %q", p.guestPath, p.hostDir, name) }
	var files []snapshot.File
	err := fs.WalkDir(p.root.FS(), ".", func(name string, _ fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("wasi: %s: %w", where(name), err)
		}
		fi, err := p.root.Lstat(name)
		if err != nil {
			return fmt.Errorf("wasi: %s: %w", where(name), err)
		}
		if dev, ino, nlink := sysStat(fi); ino != 0 && (fi.IsDir() || nlink > 1) {
			key := [2]uint64{dev, ino}
			if other, ok := seen[key]; ok {
				if fi.IsDir() {
					return notMovable("%s is %s: preopens overlap", where(name), other)
				}
				return notMovable("%s and %s are hard links to one file", where(name), other)
			}
			seen[key] = where(name)
		}
		if name == "." {
			return nil
		}
		f := snapshot.File{Path: name, Mode: fileMode(fi.Mode()), ModTimeNanos: fi.ModTime().UnixNano()}
		switch m := fi.Mode(); {
		case m.IsRegular():
			f.Type = snapshot.Regular
			if f.Data, err = p.root.ReadFile(name); err != nil {
				return fmt.Errorf("wasi: %s: %w", where(name), err)
			}
		case m.IsDir():
			f.Type = snapshot.Directory
		case m&fs.ModeSymlink != 0:
			f.Type = snapshot.Symlink
			target, err := p.root.Readlink(name)
			if err != nil {
				return fmt.Errorf("wasi: %s: %w", where(name), err)
			}
			f.Data = []byte(target)
		default:
			return notMovable("%s is a %s (only regular files, directories and symlinks can)", where(name), describe(m))
		}
		files = append(files, f)
		return nil
	})
	return files, err
}

// describe names the type of a file of mode m, for errors.
func describe(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "file of unknown type"
}

// fileMode returns the permission bits of m as a snapshot holds them.
func fileMode(m fs.FileMode) uint32 {
	mode := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// osMode returns the mode a snapshot's permission bits stand for.
func osMode(mode uint32) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	if mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// Restore rebuilds a System from st. The arguments, environment and
// monotonic clock come from st (cfg.Args and cfg.Env are ignored), the
// standard streams from cfg. Each preopen of st is matched by guest path
// to one of cfg.Preopens, whose host directory must exist and be empty:
// its files are written there, with their modes and modification times.
// The descriptors are reopened at their numbers, offsets and flags. The
// monotonic clock continues from st.MonotonicNanos.
//
// Restore checks st throughout and fails rather than rebuild something
// else; it leaves what it wrote in the host directories if it fails.
func Restore(cfg Config, st snapshot.WASIState) (*System, error) {
	s, err := newSystem(cfg, st.Args, st.Env, st.MonotonicNanos)
	if err != nil {
		return nil, err
	}
	if err := s.restore(cfg, st); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// restore rebuilds into s, which has only its standard streams, the
// preopens and descriptors of st.
func (s *System) restore(cfg Config, st snapshot.WASIState) error {
	hostDirs := make(map[string]string, len(cfg.Preopens))
	for _, pd := range cfg.Preopens {
		hostDirs[normalizeGuestPath(pd.GuestPath)] = pd.HostDir
	}
	if len(st.Preopens) != len(cfg.Preopens) {
		return fmt.Errorf("wasi: restore: the snapshot has %d preopens, the configuration %d", len(st.Preopens), len(cfg.Preopens))
	}
	entries := make([][]snapshot.File, 0, len(st.Preopens))
	for _, sp := range st.Preopens {
		gp := normalizeGuestPath(sp.GuestPath)
		hostDir, ok := hostDirs[gp]
		switch {
		case !ok:
			return fmt.Errorf("wasi: restore: the snapshot's preopen %q is not configured", sp.GuestPath)
		case sp.FD < 3 || sp.FD > math.MaxInt32 || s.fds[sp.FD] != nil:
			return fmt.Errorf("wasi: restore: preopen %q has invalid or duplicate fd %d", sp.GuestPath, sp.FD)
		}
		delete(hostDirs, gp)
		if err := checkFiles(sp.Files); err != nil {
			return fmt.Errorf("wasi: restore: preopen %q: %w", sp.GuestPath, err)
		}
		if names, err := os.ReadDir(hostDir); err != nil {
			return fmt.Errorf("wasi: restore: preopen %q: %w", sp.GuestPath, err)
		} else if len(names) > 0 {
			return fmt.Errorf("wasi: restore: preopen %q: host directory %s is not empty", sp.GuestPath, hostDir)
		}
		root, err := os.OpenRoot(hostDir)
		if err != nil {
			return fmt.Errorf("wasi: restore: preopen %q: %w", sp.GuestPath, err)
		}
		if err := s.addPreopen(sp.FD, gp, hostDir, root); err != nil {
			return err
		}
		if err := writeFiles(root, sp.Files); err != nil {
			return fmt.Errorf("wasi: restore: preopen %q (%s): %w", sp.GuestPath, hostDir, err)
		}
		entries = append(entries, sp.Files)
	}

	for i, e := range st.FDs {
		if i > 0 && e.FD <= st.FDs[i-1].FD {
			return fmt.Errorf("wasi: restore: fds out of order at fd %d", e.FD)
		}
		if err := s.reopen(e); err != nil {
			return fmt.Errorf("wasi: restore: fd %d (%q): %w", e.FD, e.Path, err)
		}
	}
	if next := s.nextFD(); st.NextFD != next {
		return fmt.Errorf("wasi: restore: the snapshot's next fd %d is not the table's, %d", st.NextFD, next)
	}

	// Modes and times last: creating an entry changes its parent's
	// modification time, and a read-only directory takes no entries.
	for i, p := range s.preopens {
		if err := setAttrs(p.root, entries[i]); err != nil {
			return fmt.Errorf("wasi: restore: preopen %q (%s): %w", p.guestPath, p.hostDir, err)
		}
	}
	return nil
}

// checkFiles checks that files are a preopen's contents as State makes
// them: valid distinct paths, each below a directory listed before it.
func checkFiles(files []snapshot.File) error {
	dirs := map[string]bool{".": true}
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		if !fs.ValidPath(f.Path) || f.Path == "." || !filepath.IsLocal(filepath.FromSlash(f.Path)) ||
			(filepath.Separator != '/' && strings.ContainsRune(f.Path, filepath.Separator)) {
			return fmt.Errorf("invalid path %q (or not one this host can represent)", f.Path)
		}
		if seen[f.Path] {
			return fmt.Errorf("%q is listed twice", f.Path)
		}
		seen[f.Path] = true
		if !dirs[path.Dir(f.Path)] {
			return fmt.Errorf("%q comes before its directory", f.Path)
		}
		if f.Mode > 0o7777 {
			return fmt.Errorf("%q: invalid mode %#o", f.Path, f.Mode)
		}
		switch f.Type {
		case snapshot.Directory:
			dirs[f.Path] = true
		case snapshot.Regular, snapshot.Symlink:
		default:
			return fmt.Errorf("%q: invalid file type %d", f.Path, f.Type)
		}
	}
	return nil
}

// writeFiles creates files in root, directories 0700 and files 0600 for
// now (setAttrs sets their modes and times).
func writeFiles(root *os.Root, files []snapshot.File) error {
	for _, f := range files {
		var err error
		switch f.Type {
		case snapshot.Directory:
			err = root.Mkdir(f.Path, 0o700)
		case snapshot.Regular:
			err = root.WriteFile(f.Path, f.Data, 0o600)
		case snapshot.Symlink:
			err = root.Symlink(string(f.Data), f.Path)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// setAttrs sets the modes and modification times of files in root,
// children before their parents. A symlink has no mode to set, and its
// time is not set where the host cannot (see lchtimes).
func setAttrs(root *os.Root, files []snapshot.File) error {
	for _, f := range slices.Backward(files) {
		mtime := time.Unix(0, f.ModTimeNanos)
		if f.Type == snapshot.Symlink {
			if err := lchtimes(root, f.Path, mtime, mtime); err != nil && !errors.Is(err, errors.ErrUnsupported) {
				return err
			}
			continue
		}
		if err := root.Chmod(f.Path, osMode(f.Mode)); err != nil {
			return err
		}
		if err := root.Chtimes(f.Path, mtime, mtime); err != nil {
			return err
		}
	}
	return nil
}

// reopen opens the descriptor e of a snapshot in s, whose preopens are
// restored.
func (s *System) reopen(e snapshot.FD) error {
	if e.FD < 3 || e.FD > math.MaxInt32 || s.fds[e.FD] != nil {
		return errors.New("invalid or duplicate fd")
	}
	pd, ok := s.fds[e.Preopen]
	if !ok || pd.kind != kindPreopen {
		return fmt.Errorf("fd %d is not a preopen", e.Preopen)
	}
	rel := e.Path
	if rel == "" {
		rel = "."
	} else if !fs.ValidPath(rel) {
		return errors.New("invalid path")
	}
	if e.Flags&^fdflagsAll != 0 {
		return fmt.Errorf("invalid fdflags %#x", e.Flags)
	}
	d := &descriptor{
		pre:              pd.pre,
		path:             rel,
		read:             e.Read,
		write:            e.Write,
		flags:            e.Flags,
		rightsBase:       e.RightsBase,
		rightsInheriting: e.RightsInheriting,
	}
	switch e.Kind {
	case snapshot.KindFile:
		d.kind = kindFile
	case snapshot.KindDir:
		d.kind = kindDir
	default:
		return fmt.Errorf("invalid kind %d", e.Kind)
	}
	f, err := pd.pre.root.OpenFile(rel, hostFlags(e.Read, e.Write, e.Flags), 0)
	if err != nil {
		return err
	}
	d.file = f
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	switch {
	case d.kind == kindDir && !fi.IsDir(), d.kind == kindFile && !fi.Mode().IsRegular():
		f.Close()
		return fmt.Errorf("is a %s, not what the snapshot says", describe(fi.Mode()))
	case d.kind == kindFile:
		if e.Offset > math.MaxInt64 {
			f.Close()
			return fmt.Errorf("invalid offset %d", e.Offset)
		}
		if _, err := f.Seek(int64(e.Offset), io.SeekStart); err != nil {
			f.Close()
			return err
		}
	}
	s.fds[e.FD] = d
	return nil
}
