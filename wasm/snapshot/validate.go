package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"path"
	"slices"
	"strings"

	"github.com/podctl/podctl/internal/errdefs"
)

// Validate reports whether s is internally consistent: memory is a whole
// number of pages, at most MaxPages; the stack locator lies within memory;
// the embedded module, if any, has the module hash; every global has a
// valid type and an i32 or f32 global no bits above the low 32; file paths
// are clean and relative, without ".." elements, listed once each, parents
// first; descriptor kinds are valid and descriptors refer to preopens;
// no argument, environment variable or path holds a NUL byte.
// docs/snapshot-format.md lists every rule. Encode refuses a snapshot that
// is not valid, and Decode returns only valid ones.
func (s *Snapshot) Validate() error {
	if s == nil {
		return errors.New("snapshot: invalid: nil snapshot")
	}
	if err := s.validate(); err != nil {
		return fmt.Errorf("snapshot: invalid: %w", err)
	}
	return nil
}

func (s *Snapshot) validate() error {
	if s.Module != nil {
		if sum := sha256.Sum256(s.Module); sum != s.ModuleHash {
			return fmt.Errorf("module bytes hash to sha256:%x, not to the module hash sha256:%x", sum, s.ModuleHash)
		}
	}
	if err := checkCount("meta entries", len(s.Meta)); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(s.Meta)) {
		v := s.Meta[k]
		if k == "" {
			return errors.New("meta: empty key")
		}
		if uint64(len(k)) > math.MaxUint32 || uint64(len(v)) > math.MaxUint32 {
			return fmt.Errorf("meta %q: longer than %d bytes", k, uint64(math.MaxUint32))
		}
	}
	if err := validateMemory(uint64(len(s.Memory)), s.Stack); err != nil {
		return err
	}
	if err := checkCount("globals", len(s.Globals)); err != nil {
		return err
	}
	for i, g := range s.Globals {
		if err := g.validate(); err != nil {
			return fmt.Errorf("global %d: %w", i, err)
		}
	}
	return s.WASI.validate()
}

// validateMemory checks the size of memory, n bytes, and that the stack
// lies within it.
func validateMemory(n uint64, st Stack) error {
	if n%PageSize != 0 {
		return fmt.Errorf("memory is %d bytes, not a whole number of %d-byte pages", n, PageSize)
	}
	if n/PageSize > MaxPages {
		return fmt.Errorf("memory has %d pages, more than the wasm32 maximum of %d", n/PageSize, MaxPages)
	}
	if uint64(st.DataAddr)+8 > n {
		return fmt.Errorf("stack: Asyncify data at %#x does not fit in %d bytes of memory", st.DataAddr, n)
	}
	if st.Start > st.End {
		return fmt.Errorf("stack: buffer start %#x is after its end %#x", st.Start, st.End)
	}
	if uint64(st.End) > n {
		return fmt.Errorf("stack: buffer end %#x is beyond %d bytes of memory", st.End, n)
	}
	return nil
}

func (g Global) validate() error {
	switch g.Type {
	case I32, F32:
		if g.Value>>32 != 0 {
			return fmt.Errorf("%v value %#x has bits set above the low 32", g.Type, g.Value)
		}
	case I64, F64:
	default:
		return fmt.Errorf("invalid value type %v", g.Type)
	}
	return nil
}

func (w *WASIState) validate() error {
	for _, list := range []struct {
		what string
		strs []string
	}{{"arg", w.Args}, {"env", w.Env}} {
		if err := checkCount(list.what+"s", len(list.strs)); err != nil {
			return err
		}
		for i, s := range list.strs {
			if err := checkString(s); err != nil {
				return fmt.Errorf("%s %d: %w", list.what, i, err)
			}
		}
	}
	if err := checkCount("preopens", len(w.Preopens)); err != nil {
		return err
	}
	preopens := make(map[uint32]bool, len(w.Preopens))
	for i := range w.Preopens {
		p := &w.Preopens[i]
		if err := p.validate(); err != nil {
			return fmt.Errorf("preopen %d (%q): %w", i, p.GuestPath, err)
		}
		if preopens[p.FD] {
			return fmt.Errorf("preopen %d (%q): descriptor %d used twice", i, p.GuestPath, p.FD)
		}
		preopens[p.FD] = true
	}
	if err := checkCount("descriptors", len(w.FDs)); err != nil {
		return err
	}
	for i := range w.FDs {
		fd := &w.FDs[i]
		if err := fd.validate(preopens); err != nil {
			return fmt.Errorf("descriptor %d: %w", fd.FD, err)
		}
		if i > 0 && fd.FD <= w.FDs[i-1].FD {
			return fmt.Errorf("descriptor %d: not in ascending order (after %d)", fd.FD, w.FDs[i-1].FD)
		}
	}
	return nil
}

func (p *Preopen) validate() error {
	if p.FD < 3 {
		return fmt.Errorf("descriptor %d is a standard stream", p.FD)
	}
	if p.GuestPath == "" {
		return errors.New("empty guest path")
	}
	if err := checkString(p.GuestPath); err != nil {
		return fmt.Errorf("guest path: %w", err)
	}
	if err := checkCount("files", len(p.Files)); err != nil {
		return err
	}
	seen := make(map[string]FileType, len(p.Files))
	for i := range p.Files {
		f := &p.Files[i]
		if err := f.validate(); err != nil {
			return fmt.Errorf("file %q: %w", f.Path, err)
		}
		if _, dup := seen[f.Path]; dup {
			return fmt.Errorf("file %q: listed twice", f.Path)
		}
		if dir := path.Dir(f.Path); dir != "." {
			t, ok := seen[dir]
			if !ok {
				return fmt.Errorf("file %q: not after its parent directory %q", f.Path, dir)
			}
			if t != Directory {
				return fmt.Errorf("file %q: parent %q is a %v, not a directory", f.Path, dir, t)
			}
		}
		seen[f.Path] = f.Type
	}
	return nil
}

func (f *File) validate() error {
	if err := checkPath(f.Path); err != nil {
		return err
	}
	switch f.Type {
	case Regular:
	case Directory:
		if len(f.Data) != 0 {
			return fmt.Errorf("directory with %d bytes of data", len(f.Data))
		}
	case Symlink:
		if len(f.Data) == 0 {
			return errors.New("symbolic link with an empty target")
		}
		if bytes.IndexByte(f.Data, 0) >= 0 {
			return errors.New("symbolic link target contains a NUL byte")
		}
	default:
		return fmt.Errorf("invalid file type %v", f.Type)
	}
	if f.Mode > maxMode {
		return fmt.Errorf("mode %#o has bits other than permissions", f.Mode)
	}
	return nil
}

func (fd *FD) validate(preopens map[uint32]bool) error {
	if fd.FD < 3 {
		return errors.New("a standard stream")
	}
	if preopens[fd.FD] {
		return errors.New("also a preopen")
	}
	switch fd.Kind {
	case KindFile:
		if fd.Path == "" {
			return errors.New("a file descriptor for the preopen directory itself")
		}
	case KindDir:
	default:
		return fmt.Errorf("invalid kind %v", fd.Kind)
	}
	if !preopens[fd.Preopen] {
		return fmt.Errorf("under descriptor %d, which is not a preopen", fd.Preopen)
	}
	if fd.Path != "" {
		if err := checkPath(fd.Path); err != nil {
			return err
		}
	}
	if fd.Flags&^fdFlagsMask != 0 {
		return fmt.Errorf("invalid fdflags %#x", fd.Flags)
	}
	return nil
}

// checkPath checks a path relative to a preopen.
func checkPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case p[0] == '/':
		return fmt.Errorf("path %q is absolute", p)
	case path.Clean(p) != p:
		return fmt.Errorf("path %q is not clean", p)
	case p == ".":
		return errors.New("path \".\" names the preopen itself")
	case p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("path %q leaves the preopen", p)
	}
	if err := checkString(p); err != nil {
		return fmt.Errorf("path %q: %w", p, err)
	}
	return nil
}

// checkString checks a string the format holds: its length must fit the
// format's 32-bit length, and WASI hands it to the guest NUL-terminated.
func checkString(s string) error {
	if uint64(len(s)) > math.MaxUint32 {
		return fmt.Errorf("%d bytes long, more than %d", len(s), uint64(math.MaxUint32))
	}
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("contains a NUL byte")
	}
	return nil
}

// checkCount checks that a count fits the format's 32-bit counts.
func checkCount(what string, n int) error {
	if uint64(n) > math.MaxUint32 {
		return fmt.Errorf("%d %s, more than %d", n, what, uint64(math.MaxUint32))
	}
	return nil
}

// CheckModule returns an error unless s was taken from the module whose
// prepared bytes have SHA-256 hash: a snapshot resumes only in the module
// it was taken from.
func (s *Snapshot) CheckModule(hash [32]byte) error {
	if s.ModuleHash == hash {
		return nil
	}
	have, want := hex.EncodeToString(s.ModuleHash[:]), hex.EncodeToString(hash[:])
	const short = 12
	if have[:short] != want[:short] {
		have, want = have[:short]+"…", want[:short]+"…"
	}
	return errdefs.New(errdefs.InvalidImage, "snapshot: taken from module sha256:%s, not sha256:%s", have, want)
}

// String returns the type's name in the WebAssembly text format.
func (t ValueType) String() string {
	switch t {
	case I32:
		return "i32"
	case I64:
		return "i64"
	case F32:
		return "f32"
	case F64:
		return "f64"
	}
	return fmt.Sprintf("ValueType(%#x)", uint8(t))
}

// String returns the file type's name.
func (t FileType) String() string {
	switch t {
	case Regular:
		return "regular file"
	case Directory:
		return "directory"
	case Symlink:
		return "symbolic link"
	}
	return fmt.Sprintf("FileType(%d)", uint8(t))
}

// String returns the descriptor kind's name.
func (k FDKind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDir:
		return "directory"
	}
	return fmt.Sprintf("FDKind(%d)", uint8(k))
}
