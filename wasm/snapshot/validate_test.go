package snapshot

import (
	"bytes"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	if err := richSnapshot().Validate(); err != nil {
		t.Fatalf("richSnapshot: %v", err)
	}
	var nilSnapshot *Snapshot
	if err := nilSnapshot.Validate(); err == nil {
		t.Error("a nil snapshot is valid")
	}

	data := func(s *Snapshot) *Preopen { return &s.WASI.Preopens[0] }
	for _, tc := range []struct {
		name   string
		modify func(s *Snapshot)
		want   string
	}{
		{"module hash", func(s *Snapshot) { s.ModuleHash[0] ^= 1 }, "module bytes hash to sha256:"},
		{"module bytes", func(s *Snapshot) { s.Module = s.Module[1:] }, "module bytes hash to sha256:"},
		{"meta empty key", func(s *Snapshot) { s.Meta[""] = "x" }, "meta: empty key"},
		{"memory not whole pages", func(s *Snapshot) { s.Memory = s.Memory[:len(s.Memory)-1] }, "not a whole number of 65536-byte pages"},
		{"no memory", func(s *Snapshot) { s.Memory = nil }, "stack: Asyncify data at 0x10 does not fit in 0 bytes of memory"},
		{"stack data at the end", func(s *Snapshot) { s.Stack.DataAddr = uint32(len(s.Memory) - 7) }, "does not fit in"},
		{"stack data overflow", func(s *Snapshot) { s.Stack.DataAddr = 0xffff_fffc }, "does not fit in"},
		{"stack start after end", func(s *Snapshot) { s.Stack.Start = s.Stack.End + 1 }, "stack: buffer start 0x801 is after its end 0x800"},
		{"stack end beyond memory", func(s *Snapshot) { s.Stack.End = uint32(len(s.Memory) + 1) }, "stack: buffer end 0x60001 is beyond 393216 bytes of memory"},
		{"global type", func(s *Snapshot) { s.Globals[2].Type = 0x7b }, "global 2: invalid value type ValueType(0x7b)"},
		{"global type zero", func(s *Snapshot) { s.Globals[0].Type = 0 }, "global 0: invalid value type"},
		{"i32 high bits", func(s *Snapshot) { s.Globals[0].Value = 1 << 32 }, "global 0: i32 value 0x100000000 has bits set above the low 32"},
		{"f32 high bits", func(s *Snapshot) { s.Globals[2].Value |= 1 << 63 }, "global 2: f32 value"},
		{"arg NUL", func(s *Snapshot) { s.WASI.Args[1] = "a\x00b" }, "arg 1: contains a NUL byte"},
		{"env NUL", func(s *Snapshot) { s.WASI.Env[0] = "A=\x00" }, "env 0: contains a NUL byte"},
		{"preopen on stdin", func(s *Snapshot) { data(s).FD = 0 }, `preopen 0 ("/data"): descriptor 0 is a standard stream`},
		{"preopen twice", func(s *Snapshot) { s.WASI.Preopens[1].FD = 3 }, `preopen 1 ("/tmp"): descriptor 3 used twice`},
		{"preopen without name", func(s *Snapshot) { data(s).GuestPath = "" }, "empty guest path"},
		{"file path empty", func(s *Snapshot) { data(s).Files[0].Path = "" }, `file "": empty path`},
		{"file path absolute", func(s *Snapshot) { data(s).Files[0].Path = "/a.txt" }, `path "/a.txt" is absolute`},
		{"file path dot", func(s *Snapshot) { data(s).Files[0].Path = "." }, `names the preopen itself`},
		{"file path dotdot", func(s *Snapshot) { data(s).Files[0].Path = ".." }, `path ".." leaves the preopen`},
		{"file path escapes", func(s *Snapshot) { data(s).Files[0].Path = "../etc/passwd" }, `path "../etc/passwd" leaves the preopen`},
		{"file path inner dotdot", func(s *Snapshot) { data(s).Files[2].Path = "dir/../b.bin" }, `path "dir/../b.bin" is not clean`},
		{"file path double slash", func(s *Snapshot) { data(s).Files[2].Path = "dir//b.bin" }, `is not clean`},
		{"file path trailing slash", func(s *Snapshot) { data(s).Files[1].Path = "dir/" }, `is not clean`},
		{"file path dot element", func(s *Snapshot) { data(s).Files[2].Path = "./dir/b.bin" }, `is not clean`},
		{"file path NUL", func(s *Snapshot) { data(s).Files[0].Path = "a\x00" }, `contains a NUL byte`},
		{"file twice", func(s *Snapshot) { data(s).Files[2].Path = "dir/link" }, `file "dir/link": listed twice`},
		{"file before its parent", func(s *Snapshot) { f := data(s).Files; f[1], f[2] = f[2], f[1] }, `file "dir/b.bin": not after its parent directory "dir"`},
		{"file under a file", func(s *Snapshot) { data(s).Files[2].Path = "a.txt/b.bin" }, `parent "a.txt" is a regular file, not a directory`},
		{"file type", func(s *Snapshot) { data(s).Files[0].Type = 4 }, "invalid file type FileType(4)"},
		{"file type zero", func(s *Snapshot) { data(s).Files[0].Type = 0 }, "invalid file type"},
		{"file mode", func(s *Snapshot) { data(s).Files[0].Mode = 0o100644 }, "mode 0100644 has bits other than permissions"},
		{"directory with data", func(s *Snapshot) { data(s).Files[1].Data = []byte("x") }, "directory with 1 bytes of data"},
		{"symlink empty", func(s *Snapshot) { data(s).Files[3].Data = nil }, "symbolic link with an empty target"},
		{"symlink NUL", func(s *Snapshot) { data(s).Files[3].Data = []byte("a\x00") }, "target contains a NUL byte"},
		{"fd on stdout", func(s *Snapshot) { s.WASI.FDs[0].FD = 1 }, "descriptor 1: a standard stream"},
		{"fd is a preopen", func(s *Snapshot) { s.WASI.FDs[0].FD = 5 }, "descriptor 5: also a preopen"},
		{"fd kind", func(s *Snapshot) { s.WASI.FDs[0].Kind = 3 }, "descriptor 6: invalid kind FDKind(3)"},
		{"fd kind zero", func(s *Snapshot) { s.WASI.FDs[0].Kind = 0 }, "invalid kind"},
		{"fd not under a preopen", func(s *Snapshot) { s.WASI.FDs[1].Preopen = 6 }, "descriptor 7: under descriptor 6, which is not a preopen"},
		{"fd path", func(s *Snapshot) { s.WASI.FDs[1].Path = "dir/" }, `descriptor 7: path "dir/" is not clean`},
		{"fd path escapes", func(s *Snapshot) { s.WASI.FDs[1].Path = "../x" }, `descriptor 7: path "../x" leaves the preopen`},
		{"file fd on the preopen", func(s *Snapshot) { s.WASI.FDs[0].Path = "" }, "descriptor 6: a file descriptor for the preopen directory itself"},
		{"fd flags", func(s *Snapshot) { s.WASI.FDs[0].Flags = 0x20 }, "descriptor 6: invalid fdflags 0x20"},
		{"fds out of order", func(s *Snapshot) { f := s.WASI.FDs; f[0], f[1] = f[1], f[0] }, "descriptor 6: not in ascending order (after 7)"},
		{"fd twice", func(s *Snapshot) { s.WASI.FDs[1].FD = 6 }, "descriptor 6: not in ascending order (after 6)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := richSnapshot()
			tc.modify(s)
			err := s.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), "snapshot: invalid: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: error %v, want one starting \"snapshot: invalid: \" and containing %q", err, tc.want)
			}
			var buf bytes.Buffer
			if err := Encode(&buf, s); err == nil || buf.Len() != 0 {
				t.Errorf("Encode of an invalid snapshot: error %v, %d bytes written", err, buf.Len())
			}
		})
	}
}

// TestValidateMemoryBeyondWasm32 checks memory's size without allocating
// the 4 GiB a Snapshot would need.
func TestValidateMemoryBeyondWasm32(t *testing.T) {
	st := Stack{DataAddr: 16, Start: 1024, End: 2048}
	if err := validateMemory(MaxPages*PageSize, st); err != nil {
		t.Errorf("%d pages: %v", MaxPages, err)
	}
	err := validateMemory((MaxPages+1)*PageSize, st)
	if want := "memory has 65537 pages, more than the wasm32 maximum of 65536"; err == nil || err.Error() != want {
		t.Errorf("%d pages: error %v, want %s", MaxPages+1, err, want)
	}
}

func TestValidateAccepts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(s *Snapshot)
	}{
		{"no module", func(s *Snapshot) { s.Module = nil; s.ModuleHash = [32]byte{1} }},
		{"stack data at the very end", func(s *Snapshot) { s.Stack.DataAddr = uint32(len(s.Memory) - 8) }},
		{"empty stack buffer at the end", func(s *Snapshot) { s.Stack.Start, s.Stack.End = uint32(len(s.Memory)), uint32(len(s.Memory)) }},
		{"dotted names", func(s *Snapshot) { s.WASI.Preopens[0].Files[0].Path = "..a.txt" }},
		{"odd but valid names", func(s *Snapshot) { s.WASI.Preopens[0].Files[2].Path = "dir/...b bin\\" }},
		{"absolute symlink target", func(s *Snapshot) { s.WASI.Preopens[0].Files[3].Data = []byte("/etc/passwd") }},
		{"directory fd on the preopen", func(s *Snapshot) { s.WASI.FDs[1].Path = "" }},
		{"fd to a missing path", func(s *Snapshot) { s.WASI.FDs[0].Path = "gone" }},
		{"i32 all ones", func(s *Snapshot) { s.Globals[0].Value = 0xffff_ffff }},
		{"empty logs", func(s *Snapshot) { s.WASI.Stdout, s.WASI.Stderr = nil, nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := richSnapshot()
			tc.modify(s)
			if err := s.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}
