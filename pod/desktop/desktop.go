// Package desktop makes desktop pods: an X session a person watches and
// uses through VNC, or through noVNC in a browser, all of it inside the
// pod so that checkpoint, restore and migration carry it whole, the
// viewers' connections included.
//
// A desktop pod is an ordinary native pod whose payload is the session
// script below: TigerVNC's Xvnc (an X server with a built-in VNC server)
// on display :1, twm, an xterm running bash, xclock, websockify serving
// noVNC, and the user's application. The packages come from the image
// (the host's, where make deps installs them).
package desktop

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/pod"
)

// The ports of a desktop pod, GUI containers' conventions: VNC on 5900,
// the noVNC page on 5800.
const (
	VNCPort = 5900
	WebPort = 5800
)

// Display is the X display the session runs on.
const Display = ":1"

// DefaultGeometry is the screen size when none is asked for.
const DefaultGeometry = "1280x800"

// passwordEnv carries the VNC password to the session script, which
// turns it into Xvnc's password file and unsets it.
const passwordEnv = "PODCTL_VNC_PASSWORD"

// Options are what `podctl create --desktop` is asked for.
type Options struct {
	// Geometry is the screen's WIDTHxHEIGHT ("": DefaultGeometry).
	Geometry string
	// Password is the VNC password ("": one is generated). VNC
	// authentication reads 8 characters at most.
	Password string
	// App is the application started on the desktop, if any.
	App []string
}

// Programs the session runs, and the Debian packages that have them.
var programs = []struct{ name, pkg string }{
	{"Xvnc", "tigervnc-standalone-server"},
	{"vncpasswd", "tigervnc-tools"},
	{"twm", "twm"},
	{"xterm", "xterm"},
	{"bash", "bash"},
	{"xclock", "x11-apps"},
	{"websockify", "websockify"},
	{"python3", "python3"},
}

// noVNCDir is where Debian's novnc package puts the web client.
const noVNCDir = "/usr/share/novnc"

// Command checks o against the image rooted at root ("/" for the host's)
// and returns the pod's payload and the environment it needs, and the
// session to record. Nothing is created.
func Command(o Options, root string) (argv, env []string, s *pod.Desktop, err error) {
	geometry := o.Geometry
	if geometry == "" {
		geometry = DefaultGeometry
	}
	if _, _, err := ParseGeometry(geometry); err != nil {
		return nil, nil, nil, err
	}
	password := o.Password
	if password == "" {
		password = generatePassword()
	}
	if err := checkPassword(password); err != nil {
		return nil, nil, nil, err
	}
	for _, p := range programs {
		if _, ok := lookPath(root, p.name); !ok {
			return nil, nil, nil, errdefs.New(errdefs.Unsupported, "desktop pods need %s in the image (Debian package %s; make deps installs it on the host)", p.name, p.pkg)
		}
	}
	if _, err := os.Stat(filepath.Join(root, noVNCDir, "vnc.html")); err != nil {
		return nil, nil, nil, errdefs.New(errdefs.Unsupported, "desktop pods need noVNC in the image (%s, Debian package novnc)", noVNCDir)
	}
	if len(o.App) > 0 {
		if _, ok := lookPath(root, o.App[0]); !ok {
			return nil, nil, nil, errdefs.New(errdefs.InvalidArgument, "podctl create --desktop: %s: command not found in the image", o.App[0])
		}
	}
	argv = append([]string{"/bin/sh", "-c", sessionScript, "desktop", geometry}, o.App...)
	return argv, []string{passwordEnv + "=" + password}, &pod.Desktop{Geometry: geometry, Display: Display, Password: password}, nil
}

// sessionScript starts the desktop. Its arguments are the geometry, then
// the application. It waits for Xvnc: the pod ends when the X server does.
//
// bash, not sh, is the terminal's shell: dash opens /dev/tty for job
// control, and CRIU refuses to dump a process holding /dev/tty open when
// another (xterm, with the pty's master) dumped the terminal first
// (criu/tty.c, tty_verify_ctty: "ctty inheritance detected"); bash uses
// its standard error instead.
//
// What is not used is not loaded, since a checkpoint carries every page
// and every mapping: Xvnc runs without GLX (which would map Mesa's
// software renderer and LLVM, 8 MiB of relocated data), and websockify
// without numpy (which it imports, if present, only to unmask the
// WebSocket frames a browser sends, a few bytes per key or pointer
// event). Together they halve the pages a desktop's checkpoint writes,
// from 47 to 24 MiB at 1280x800.
const sessionScript = `set -e
geometry=$1; shift
export HOME=/root USER=root DISPLAY=` + Display + `
mkdir -p "$HOME/.vnc" /tmp/.X11-unix
chmod 1777 /tmp/.X11-unix
(umask 077 && printf '%s\n' "$` + passwordEnv + `" | vncpasswd -f > "$HOME/.vnc/passwd")
unset ` + passwordEnv + `
Xvnc ` + Display + ` -geometry "$geometry" -depth 24 -rfbport ` + "5900" + ` -rfbauth "$HOME/.vnc/passwd" \
	-SecurityTypes VncAuth -AlwaysShared -desktop "$(hostname)" -nolisten tcp -extension GLX &
x=$!
i=0
while [ ! -S /tmp/.X11-unix/X1 ]; do
	i=$((i + 1)); [ $i -le 1000 ] || exit 1
	kill -0 $x; sleep 0.01
done
twm &
xterm -geometry 80x24+20+20 -title terminal -e bash &
xclock -geometry 160x160-20+20 -update 1 &
python3 -c 'import sys; sys.modules["numpy"] = None; import runpy; runpy.run_module("websockify", run_name="__main__")' \
	--web ` + noVNCDir + ` ` + "5800" + ` localhost:` + "5900" + ` >/dev/null 2>&1 &
if [ $# -gt 0 ]; then "$@" & fi
wait $x
`

// ParseGeometry parses WIDTHxHEIGHT, within what Xvnc and a viewer can
// use.
func ParseGeometry(g string) (width, height int, err error) {
	w, h, ok := strings.Cut(g, "x")
	width, werr := strconv.Atoi(w)
	height, herr := strconv.Atoi(h)
	if !ok || werr != nil || herr != nil || width < 320 || height < 200 || width > 8192 || height > 8192 {
		return 0, 0, errdefs.New(errdefs.InvalidArgument, "invalid --geometry %q: want WIDTHxHEIGHT, from 320x200 to 8192x8192", g)
	}
	return width, height, nil
}

// checkPassword refuses a password VNC authentication cannot carry.
func checkPassword(p string) error {
	if len(p) < 6 || len(p) > 8 || strings.ContainsAny(p, "\n\x00") {
		return errdefs.New(errdefs.InvalidArgument, "invalid VNC password: want 6 to 8 characters on one line (VNC authentication reads 8)")
	}
	return nil
}

// generatePassword returns 8 random characters of an alphabet without
// look-alikes.
func generatePassword() string {
	const alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 8)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// searchPath is the PATH the pod's payload gets.
var searchPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// lookPath finds the executable file name in the image rooted at root,
// as the pod's shell would: name itself if it has a slash, else in the
// pod's PATH. Symbolic links are followed inside root.
func lookPath(root, name string) (string, bool) {
	candidates := []string{name}
	if !strings.Contains(name, "/") {
		candidates = candidates[:0]
		for _, dir := range searchPath {
			candidates = append(candidates, filepath.Join(dir, name))
		}
	}
	for _, c := range candidates {
		if !filepath.IsAbs(c) {
			continue
		}
		if st, err := statIn(root, c); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return c, true
		}
	}
	return "", false
}

// statIn stats path inside the image rooted at root, its symbolic links
// resolved within root (as the pod sees them), at most 40 deep.
func statIn(root, path string) (os.FileInfo, error) {
	for range 40 {
		full := filepath.Join(root, path)
		st, err := os.Lstat(full)
		if err != nil || st.Mode()&os.ModeSymlink == 0 {
			if err == nil {
				// A directory on the way may be a link too: resolved by
				// the host here, which suffices for the host image.
				return os.Stat(full)
			}
			return nil, err
		}
		target, err := os.Readlink(full)
		if err != nil {
			return nil, err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(path), target)
		}
		path = target
	}
	return nil, fmt.Errorf("%s: too many symbolic links", path)
}
