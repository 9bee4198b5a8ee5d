package virtns

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podctl/podctl/internal/errdefs"
)

// fakeRoot builds a root filesystem in a temporary directory.
type fakeRoot struct {
	t    *testing.T
	root string
}

func newFakeRoot(t *testing.T) *fakeRoot {
	return &fakeRoot{t: t, root: t.TempDir()}
}

func (r *fakeRoot) path(rel string) string { return filepath.Join(r.root, rel) }

func (r *fakeRoot) file(rel string, mode os.FileMode) {
	r.t.Helper()
	p := r.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // not subject to umask
		r.t.Fatal(err)
	}
}

func (r *fakeRoot) dir(rel string) {
	r.t.Helper()
	if err := os.MkdirAll(r.path(rel), 0o755); err != nil {
		r.t.Fatal(err)
	}
}

func (r *fakeRoot) symlink(rel, target string) {
	r.t.Helper()
	p := r.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		r.t.Fatal(err)
	}
}

func (r *fakeRoot) lookOK(argv0, pathEnv, workdir, want string) {
	r.t.Helper()
	got, err := LookPath(r.root, argv0, pathEnv, workdir)
	if err != nil {
		r.t.Errorf("LookPath(%q, PATH=%q, workdir %q): %v, want %s", argv0, pathEnv, workdir, err, want)
		return
	}
	if got != want {
		r.t.Errorf("LookPath(%q, PATH=%q, workdir %q) = %s, want %s", argv0, pathEnv, workdir, got, want)
	}
}

func (r *fakeRoot) lookErr(argv0, pathEnv, workdir string, kind errdefs.Kind) {
	r.t.Helper()
	got, err := LookPath(r.root, argv0, pathEnv, workdir)
	if err == nil {
		r.t.Errorf("LookPath(%q, PATH=%q, workdir %q) = %s, want an error of kind %d", argv0, pathEnv, workdir, got, kind)
		return
	}
	if k := errdefs.KindOf(err); k != kind {
		r.t.Errorf("LookPath(%q, PATH=%q, workdir %q): kind %d, want %d: %v", argv0, pathEnv, workdir, k, kind, err)
	}
	if got != "" {
		r.t.Errorf("LookPath(%q) returned %q with an error", argv0, got)
	}
}

// hostExecutable returns an absolute host path that exists and is
// executable, so that a symlink to it would resolve if it were (wrongly)
// followed on the host.
func hostExecutable(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(exe)
	if err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("test binary %s: %v %v", exe, st, err)
	}
	return exe
}

func TestLookPathSearchOrder(t *testing.T) {
	r := newFakeRoot(t)
	r.file("usr/local/bin/tool", 0o755)
	r.file("usr/bin/tool", 0o755)
	r.file("bin/onlybin", 0o755)

	r.lookOK("tool", DefaultPath, "/", "/usr/local/bin/tool")
	r.lookOK("tool", "/usr/bin:/usr/local/bin", "/", "/usr/bin/tool")
	r.lookOK("tool", "/nonexistent:/usr/bin", "/", "/usr/bin/tool")
	r.lookOK("onlybin", DefaultPath, "/", "/bin/onlybin")
	r.lookErr("tool", "/sbin:/opt/bin", "/", errdefs.CommandNotFound)
	r.lookErr("tool", "", "/", errdefs.CommandNotFound)
	r.lookErr("nosuch", DefaultPath, "/", errdefs.CommandNotFound)
}

func TestLookPathSkipsNonExecutableAndDirectories(t *testing.T) {
	r := newFakeRoot(t)
	r.file("usr/local/bin/tool", 0o644) // first in PATH but not executable
	r.file("usr/bin/tool", 0o755)
	r.dir("usr/local/bin/dirtool") // a directory is not a command
	r.file("usr/bin/dirtool", 0o700)
	r.dir("usr/local/bin/onlydir")
	r.file("usr/bin/ownerx", 0o100)
	r.file("usr/bin/otherx", 0o001)

	r.lookOK("tool", DefaultPath, "/", "/usr/bin/tool")
	r.lookOK("dirtool", DefaultPath, "/", "/usr/bin/dirtool")
	r.lookErr("onlydir", DefaultPath, "/", errdefs.CommandNotFound)
	r.lookOK("ownerx", DefaultPath, "/", "/usr/bin/ownerx")
	r.lookOK("otherx", DefaultPath, "/", "/usr/bin/otherx")
}

func TestLookPathNotExecutable(t *testing.T) {
	r := newFakeRoot(t)
	r.file("usr/local/bin/script", 0o644)
	r.file("usr/bin/script", 0o600)
	r.file("app/run.sh", 0o644)

	r.lookErr("script", DefaultPath, "/", errdefs.CommandNotExecutable)
	r.lookErr("./run.sh", DefaultPath, "/app", errdefs.CommandNotExecutable)
	r.lookErr("/app/run.sh", DefaultPath, "/", errdefs.CommandNotExecutable)

	// The error names the first match found in PATH order.
	_, err := LookPath(r.root, "script", DefaultPath, "/")
	if err == nil || !strings.Contains(err.Error(), "/usr/local/bin/script") {
		t.Errorf("error %v does not name /usr/local/bin/script", err)
	}
}

func TestLookPathWithSlash(t *testing.T) {
	r := newFakeRoot(t)
	r.file("app/run.sh", 0o755)
	r.file("app/bin/x", 0o755)
	r.file("usr/bin/tool", 0o755)

	r.lookOK("./run.sh", DefaultPath, "/app", "/app/run.sh")
	r.lookOK("bin/x", DefaultPath, "/app", "/app/bin/x")
	r.lookOK("/usr/bin/tool", "", "/app", "/usr/bin/tool")
	r.lookOK("../usr/bin/tool", DefaultPath, "/app", "/usr/bin/tool")
	r.lookOK("/app/../app/./run.sh", DefaultPath, "/", "/app/run.sh")
	// A name with a slash is never searched in PATH.
	r.lookErr("./tool", DefaultPath, "/", errdefs.CommandNotFound)
	r.lookErr("bin/tool", "/usr", "/app", errdefs.CommandNotFound)
	// Relative to workdir, not to /.
	r.lookErr("./run.sh", DefaultPath, "/", errdefs.CommandNotFound)
	// ".." cannot climb out of the rootfs.
	r.lookErr("../../../../../../../../"+strings.TrimPrefix(hostExecutable(t), "/"), DefaultPath, "/app", errdefs.CommandNotFound)
}

func TestLookPathRelativePathEntries(t *testing.T) {
	r := newFakeRoot(t)
	r.file("app/tool", 0o755)
	r.file("app/bin/helper", 0o755)

	// An empty PATH entry is the working directory, as in a shell.
	r.lookOK("tool", "/usr/bin::/bin", "/app", "/app/tool")
	r.lookOK("tool", "/usr/bin:", "/app", "/app/tool")
	// A relative entry is relative to the working directory.
	r.lookOK("helper", "/usr/bin:bin", "/app", "/app/bin/helper")
	r.lookOK("tool", ".", "/app", "/app/tool")
	r.lookErr("tool", "/usr/bin:/bin", "/app", errdefs.CommandNotFound)
}

func TestLookPathSymlinksResolvedInRootfs(t *testing.T) {
	r := newFakeRoot(t)
	r.file("usr/bin/hello", 0o755)
	r.symlink("bin", "usr/bin") // merged /usr, relative link
	r.file("usr/bin/dash", 0o755)
	r.symlink("usr/bin/sh", "/usr/bin/dash") // absolute link, must stay in the rootfs
	r.symlink("usr/local/bin/rel", "../../bin/hello")

	r.lookOK("hello", "/bin", "/", "/bin/hello")
	r.lookOK("hello", DefaultPath, "/", "/usr/bin/hello")
	r.lookOK("sh", "/bin", "/", "/bin/sh")
	r.lookOK("sh", DefaultPath, "/", "/usr/bin/sh")
	r.lookOK("/bin/sh", "", "/", "/bin/sh")
	r.lookOK("rel", DefaultPath, "/", "/usr/local/bin/rel")
}

func TestLookPathAbsoluteSymlinkNotFollowedOnHost(t *testing.T) {
	exe := hostExecutable(t)

	// The rootfs' dash is not executable. If /usr/bin/sh -> /usr/bin/dash
	// were resolved on the host, the host's dash would be found instead.
	r := newFakeRoot(t)
	r.file("usr/bin/dash", 0o644)
	r.symlink("usr/bin/sh", "/usr/bin/dash")
	r.lookErr("sh", DefaultPath, "/", errdefs.CommandNotExecutable)

	// Absolute links to host executables that do not exist in the rootfs.
	r2 := newFakeRoot(t)
	r2.symlink("usr/bin/sh", "/usr/bin/dash")
	r2.symlink("usr/bin/exe", exe)
	r2.symlink("bin", "/usr/bin")
	r2.lookErr("sh", DefaultPath, "/", errdefs.CommandNotFound)
	r2.lookErr("exe", DefaultPath, "/", errdefs.CommandNotFound)
	r2.lookErr("exe", "/bin", "/", errdefs.CommandNotFound)
	r2.lookErr(exe, DefaultPath, "/", errdefs.CommandNotFound)

	// A relative link that climbs above the rootfs is clamped at its root.
	r3 := newFakeRoot(t)
	r3.symlink("usr/bin/esc", strings.Repeat("../", 40)+strings.TrimPrefix(exe, "/"))
	r3.lookErr("esc", DefaultPath, "/", errdefs.CommandNotFound)

	// A directory link pointing at a host directory.
	r4 := newFakeRoot(t)
	r4.symlink("opt", filepath.Dir(exe))
	r4.lookErr(filepath.Base(exe), "/opt", "/", errdefs.CommandNotFound)

	// Dangling links, and links to directories, are not commands.
	r5 := newFakeRoot(t)
	r5.symlink("usr/bin/dangling", "/nowhere")
	r5.dir("etc")
	r5.symlink("usr/bin/etc", "/etc")
	r5.lookErr("dangling", DefaultPath, "/", errdefs.CommandNotFound)
	r5.lookErr("etc", DefaultPath, "/", errdefs.CommandNotFound)
}

func TestValidateImage(t *testing.T) {
	type layout func(r *fakeRoot)
	tests := []struct {
		desc  string
		setup layout
		ok    bool
	}{
		{"empty dir", func(r *fakeRoot) {}, false},
		{"only etc", func(r *fakeRoot) { r.dir("etc") }, false},
		{"only usr/bin", func(r *fakeRoot) { r.dir("usr/bin") }, false},
		{"only bin", func(r *fakeRoot) { r.dir("bin") }, false},
		{"etc and usr without bin", func(r *fakeRoot) { r.dir("etc"); r.dir("usr/lib") }, false},
		{"etc is a file", func(r *fakeRoot) { r.file("etc", 0o644); r.dir("usr/bin") }, false},
		{"bin is a file", func(r *fakeRoot) { r.dir("etc"); r.file("bin", 0o755) }, false},
		{"etc and usr/bin", func(r *fakeRoot) { r.dir("etc"); r.dir("usr/bin") }, true},
		{"etc and bin", func(r *fakeRoot) { r.dir("etc"); r.dir("bin") }, true},
		{"etc, bin -> usr/bin", func(r *fakeRoot) { r.dir("etc"); r.dir("usr/bin"); r.symlink("bin", "usr/bin") }, true},
		{"etc, bin -> /usr/bin inside", func(r *fakeRoot) { r.dir("etc"); r.dir("usr/bin"); r.symlink("bin", "/usr/bin") }, true},
		{"etc, bin -> /bin.real inside", func(r *fakeRoot) { r.dir("etc"); r.dir("bin.real"); r.symlink("bin", "/bin.real") }, true},
		{"etc, bin -> bin.real relative", func(r *fakeRoot) { r.dir("etc"); r.dir("bin.real"); r.symlink("bin", "bin.real") }, true},
		{"etc, dangling bin -> usr/bin", func(r *fakeRoot) { r.dir("etc"); r.symlink("bin", "usr/bin") }, false},
		// Absolute links resolve inside the image: the host's /usr/bin
		// and /etc must not make a directory look like a root filesystem.
		{"etc, bin -> /usr/bin on host only", func(r *fakeRoot) { r.dir("etc"); r.symlink("bin", "/usr/bin") }, false},
		{"etc -> /etc on host only", func(r *fakeRoot) { r.symlink("etc", "/etc"); r.dir("usr/bin") }, false},
		{"etc -> ../../../etc", func(r *fakeRoot) { r.symlink("etc", "../../../../../../etc"); r.dir("usr/bin") }, false},
		{"etc -> real/etc", func(r *fakeRoot) { r.dir("real/etc"); r.symlink("etc", "/real/etc"); r.dir("usr/bin") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			r := newFakeRoot(t)
			tt.setup(r)
			err := ValidateImage(r.root)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateImage: %v", err)
				}
				// A trailing slash does not matter.
				if err := ValidateImage(r.root + "/"); err != nil {
					t.Fatalf("ValidateImage with trailing slash: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("ValidateImage = nil, want an InvalidImage error")
			}
			if k := errdefs.KindOf(err); k != errdefs.InvalidImage {
				t.Fatalf("kind %d, want InvalidImage: %v", k, err)
			}
		})
	}
}

func TestValidateImagePaths(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		desc, image string
	}{
		{"empty", ""},
		{"relative", "rootfs"},
		{"dot relative", "./rootfs"},
		{"host keyword", "host"}, // resolved to "/" by package pod, not here
		{"missing", filepath.Join(dir, "missing")},
		{"file", file},
		{"under a file", filepath.Join(file, "sub")},
	} {
		err := ValidateImage(tt.image)
		if err == nil {
			t.Errorf("%s: ValidateImage(%q) = nil, want an error", tt.desc, tt.image)
			continue
		}
		if k := errdefs.KindOf(err); k != errdefs.InvalidImage {
			t.Errorf("%s: ValidateImage(%q): kind %d, want InvalidImage: %v", tt.desc, tt.image, k, err)
		}
	}
	// The cause is kept for a missing directory.
	if err := ValidateImage(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing image: %v does not wrap fs.ErrNotExist", err)
	}

	// An image path that is itself a symlink to a root filesystem is fine.
	r := newFakeRoot(t)
	r.dir("etc")
	r.dir("usr/bin")
	link := filepath.Join(dir, "link")
	if err := os.Symlink(r.root, link); err != nil {
		t.Fatal(err)
	}
	if err := ValidateImage(link); err != nil {
		t.Errorf("ValidateImage(symlink to rootfs): %v", err)
	}
}
