package desktop

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podctl/podctl/internal/errdefs"
)

func TestParseGeometry(t *testing.T) {
	for _, g := range []string{"1280x800", "320x200", "8192x8192"} {
		if _, _, err := ParseGeometry(g); err != nil {
			t.Errorf("%s: %v", g, err)
		}
	}
	for _, g := range []string{"", "1280", "1280x", "x800", "1280X800", "100x100", "9000x800", "-1280x800", "1280x800x24"} {
		if _, _, err := ParseGeometry(g); errdefs.KindOf(err) != errdefs.InvalidArgument {
			t.Errorf("%q: %v, want InvalidArgument", g, err)
		}
	}
}

// fakeImage makes a root filesystem holding the session's programs (empty
// executables; links as Debian's alternatives make them) and noVNC.
func fakeImage(t *testing.T) string {
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "bin", "etc/alternatives", "usr/share/novnc"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	for _, p := range []string{"twm", "xterm", "xclock", "websockify", "python3", "Xtigervnc", "tigervncpasswd", "myapp"} {
		os.WriteFile(filepath.Join(root, "usr/bin", p), nil, 0o755)
	}
	os.WriteFile(filepath.Join(root, "bin/bash"), nil, 0o755)
	// Absolute links resolve inside the image, not on the host.
	os.Symlink("/etc/alternatives/Xvnc", filepath.Join(root, "usr/bin/Xvnc"))
	os.Symlink("/usr/bin/Xtigervnc", filepath.Join(root, "etc/alternatives/Xvnc"))
	os.Symlink("tigervncpasswd", filepath.Join(root, "usr/bin/vncpasswd"))
	os.WriteFile(filepath.Join(root, "usr/share/novnc/vnc.html"), nil, 0o644)
	os.WriteFile(filepath.Join(root, "usr/bin/notexec"), nil, 0o644)
	return root
}

func TestCommand(t *testing.T) {
	root := fakeImage(t)
	argv, env, s, err := Command(Options{App: []string{"myapp", "--flag"}}, root)
	if err != nil {
		t.Fatal(err)
	}
	if s.Geometry != DefaultGeometry || s.Display != Display || len(s.Password) != 8 {
		t.Errorf("session %+v", s)
	}
	if len(env) != 1 || env[0] != passwordEnv+"="+s.Password {
		t.Errorf("env %q", env)
	}
	if argv[0] != "/bin/sh" || argv[4] != DefaultGeometry || strings.Join(argv[5:], " ") != "myapp --flag" {
		t.Errorf("argv %q", argv)
	}
	if _, _, s, err := Command(Options{Geometry: "800x600", Password: "secret12"}, root); err != nil || s.Password != "secret12" || s.Geometry != "800x600" {
		t.Errorf("given geometry and password: %+v, %v", s, err)
	}
	for _, tc := range []struct {
		name string
		o    Options
		kind errdefs.Kind
		says string
	}{
		{"app not found", Options{App: []string{"nosuchapp"}}, errdefs.InvalidArgument, "nosuchapp: command not found"},
		{"app not executable", Options{App: []string{"notexec"}}, errdefs.InvalidArgument, "command not found"},
		{"bad geometry", Options{Geometry: "big"}, errdefs.InvalidArgument, "--geometry"},
		{"short password", Options{Password: "abc"}, errdefs.InvalidArgument, "6 to 8 characters"},
		{"long password", Options{Password: "abcdefghi"}, errdefs.InvalidArgument, "6 to 8 characters"},
	} {
		if _, _, _, err := Command(tc.o, root); errdefs.KindOf(err) != tc.kind || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.kind, tc.says)
		}
	}
	os.Remove(filepath.Join(root, "usr/bin/xclock"))
	if _, _, _, err := Command(Options{}, root); errdefs.KindOf(err) != errdefs.Unsupported || !strings.Contains(err.Error(), "x11-apps") {
		t.Errorf("without xclock: %v", err)
	}
}
