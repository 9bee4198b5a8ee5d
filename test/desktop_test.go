package test

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// needDesktop skips unless the desktop's programs are installed (make
// deps installs them).
func needDesktop(t testing.TB) {
	t.Helper()
	for _, tool := range [][2]string{{"Xvnc", "tigervnc-standalone-server"}, {"twm", "twm"}, {"xterm", "xterm"}, {"xclock", "x11-apps"},
		{"xwininfo", "x11-utils"}, {"xdotool", "xdotool"}, {"websockify", "websockify"}} {
		harness.NeedTool(t, tool[0], tool[1])
	}
}

// desktopPassword is the VNC password of the tests' desktops.
const desktopPassword = "s3cret12"

// createDesktop creates desktop pod name on h, with create's flags
// args, and waits until its terminal and its clock are on the screen.
func createDesktop(t *testing.T, h *harness.Host, name string, args ...string) {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "vncpass")
	os.WriteFile(pw, []byte(desktopPassword+"\n"), 0o600)
	h.MustPodctl(append(append([]string{"create", "--desktop", "--geometry", "1024x640", "--vnc-password-file", pw}, args...), name)...)
	waitDesktop(t, h, name)
}

// waitDesktop waits until the terminal and the clock of desktop pod name
// are on its screen.
func waitDesktop(t testing.TB, h *harness.Host, name string) {
	t.Helper()
	harness.Eventually(t, 30*time.Second, func() error {
		for _, w := range []string{"terminal", "xclock"} {
			if _, err := windowRect(h, name, w); err != nil {
				return err
			}
		}
		return nil
	})
}

// xwininfoRE reads a window's absolute position and size from xwininfo.
var xwininfoRE = regexp.MustCompile(`Absolute upper-left X:\s+(-?\d+)\s+Absolute upper-left Y:\s+(-?\d+)[\s\S]*?Width:\s+(\d+)\s+Height:\s+(\d+)[\s\S]*?Border width:\s+(\d+)`)

// windowRect is where the window titled title is on the desktop of pod
// name, as its X server says (xwininfo), its border and twm's frame
// (title bar) around it included.
func windowRect(h *harness.Host, name, title string) (image.Rectangle, error) {
	// The visible window of that title (xterm has an unmapped one too).
	r := h.Podctl("exec", "-e", "DISPLAY=:1", name, "--", "sh", "-c",
		`w=$(xdotool search --onlyvisible --name "^$1\$" | head -1) && [ -n "$w" ] && xwininfo -id "$w"`, "xwininfo", title)
	m := xwininfoRE.FindStringSubmatch(r.Stdout)
	if r.Code != 0 || m == nil {
		return image.Rectangle{}, fmt.Errorf("xwininfo -name %s: exit %d: %s%s", title, r.Code, r.Stdout, r.Stderr)
	}
	n := make([]int, 5)
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	// twm's title bar sits above the window, its frame around: a margin
	// of the title bar's height covers both.
	const frame = 30
	return image.Rect(n[0]-n[4]-frame, n[1]-n[4]-frame, n[0]+n[2]+n[4]+frame, n[1]+n[3]+n[4]+frame), nil
}

// screenshot takes pod name's screen with podctl screenshot.
func screenshot(t *testing.T, h *harness.Host, name string) image.Image {
	t.Helper()
	out := filepath.Join(t.TempDir(), "shot.png")
	h.MustPodctl("screenshot", name, "-o", out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot of %s: %v", name, err)
	}
	return img
}

// differences counts the pixels where a and b differ outside skip, and
// returns the smallest rectangle that holds them.
func differences(a, b image.Image, skip image.Rectangle) (n int, within image.Rectangle) {
	bounds := a.Bounds().Union(b.Bounds())
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			p := image.Pt(x, y)
			if p.In(skip) {
				continue
			}
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 {
				n++
				within = within.Union(image.Rectangle{p, p.Add(image.Pt(1, 1))})
			}
		}
	}
	return n, within
}

// typeInTerminal types text and then key (Return, Escape) into the
// desktop's terminal, as a person would: the pointer over it (twm's
// focus follows the pointer), then keystrokes through the X server
// (xdotool's XTEST).
func typeInTerminal(t *testing.T, h *harness.Host, name, text, key string) {
	t.Helper()
	h.MustPodctl("exec", "-e", "DISPLAY=:1", name, "--", "sh", "-c",
		`w=$(xdotool search --onlyvisible --name '^terminal$' | head -1) && xdotool mousemove --window "$w" 40 40 && sleep 0.2 && xdotool type --delay 20 "$1" && xdotool key "$2"`,
		"type", text, key)
}

// TestDesktopMigratesWithItsViewer runs a desktop pod on host A with a
// VNC viewer connected from the LAN's client (and a wrong password
// refused) and the noVNC page open in Chromium, types a command into its
// terminal and text into vi without saving it, checkpoints and restores
// it, migrates it to B (stop-and-copy) and back (--live). After each move
// the screen is what it was (outside the clock), the session still works
// (vi saves the text it held, a command typed runs in the same working
// directory), and the viewer's and the page's one connections keep
// receiving updates.
func TestDesktopMigratesWithItsViewer(t *testing.T) {
	harness.RequireRoot(t)
	needDesktop(t)
	lan := harness.NewLAN(t, podctlBin, 2)
	pki := lan.PKI(t)
	a, b := lan.Hosts[0], lan.Hosts[1]
	createDesktop(t, a, "desk")
	ip := a.Inspect("desk").Endpoint.IP

	conn, err := harness.DialIn(lan.ClientNSPath, net.JoinHostPort(ip, "5900"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := harness.DialRFB(conn, desktopPassword, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.Close()
	if viewer.Width != 1024 || viewer.Height != 640 {
		t.Errorf("the viewer sees a %dx%d screen, want 1024x640", viewer.Width, viewer.Height)
	}
	// A viewer without the password gets nothing.
	if conn, err := harness.DialIn(lan.ClientNSPath, net.JoinHostPort(ip, "5900"), 10*time.Second); err != nil {
		t.Fatal(err)
	} else if intruder, err := harness.DialRFB(conn, "guessed1", 10*time.Second); err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("a viewer with a wrong password: %v, want authentication failed", err)
		if intruder != nil {
			intruder.Close()
		}
	}
	// viewed checks that the viewer's connection still carries updates:
	// the clock redraws itself every second.
	viewed := func(when string) {
		t.Helper()
		if err := viewer.Request(true); err != nil {
			t.Fatalf("%s: the viewer's request: %v", when, err)
		}
		if _, err := viewer.ReadUpdate(10 * time.Second); err != nil {
			t.Fatalf("%s: the viewer's connection: %v", when, err)
		}
	}
	if err := viewer.Request(false); err != nil {
		t.Fatal(err)
	}
	if _, err := viewer.ReadUpdate(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	// And a person in a browser, on the noVNC page the pod serves.
	browser := openNoVNC(t, lan, ip, desktopPassword)

	typeInTerminal(t, a, "desk", "echo typed-$((6*7)) | tee /root/typed", "Return")
	if got := strings.TrimSpace(podFile(t, a, "desk", "/root/typed")); got != "typed-42" {
		t.Fatalf("the command typed into the terminal wrote %q", got)
	}
	// A working directory and an editor's unsaved text, which only the
	// processes' memory holds: vi in insert mode, left without saving.
	// Without mouse tracking (Debian's defaults.vim turns it on): while
	// an application tracks the mouse, xterm keeps the pointer shown as
	// keys are typed, and the page draws the pointer on its canvas, where
	// an X screenshot has none.
	typeInTerminal(t, a, "desk", "mkdir -p /tmp/work && cd /tmp/work && vi -c 'set mouse=' /root/unsaved.txt", "Return")
	typeInTerminal(t, a, "desk", "ihello from before the move", "Escape")
	if r := a.Podctl("exec", "desk", "--", "test", "-e", "/root/unsaved.txt"); r.Code == 0 {
		t.Fatalf("vi saved its text before it was told to")
	}
	// unchanged checks that host h shows the screen before showed,
	// outside the clock (where the X server says it is), and that the
	// browser's page shows it too, on its first WebSocket.
	unchanged := func(h *harness.Host, before image.Image, when string) image.Image {
		t.Helper()
		clock, err := windowRect(h, "desk", "xclock")
		if err != nil {
			t.Fatal(err)
		}
		after := screenshot(t, h, "desk")
		if n, within := differences(before, after, clock); n != 0 {
			t.Errorf("%s: %d pixels differ outside the clock %v, within %v", when, n, clock, within)
		}
		browser.shows(t, after, clock, when)
		return after
	}

	shot := screenshot(t, a, "desk")
	a.MustPodctl("checkpoint", "desk")
	a.MustPodctl("restore", "desk")
	shot = unchanged(a, shot, "after checkpoint and restore")

	lan.StartDock(t, 1, pki)
	a.MustPodctl("migrate", "desk", "--to", lan.DockAddr(1), "--pki", pki)
	shot = unchanged(b, shot, "after the migration to B")
	viewed("after the migration to B")

	// The editor saves the text it held, and the shell is where it was.
	typeInTerminal(t, b, "desk", ":wq", "Return")
	if got := strings.TrimSpace(podFile(t, b, "desk", "/root/unsaved.txt")); got != "hello from before the move" {
		t.Fatalf("after the move, vi saved %q", got)
	}
	typeInTerminal(t, b, "desk", "echo again-$((7*7)) $PWD | tee /root/typed", "Return")
	if got := strings.TrimSpace(podFile(t, b, "desk", "/root/typed")); got != "again-49 /tmp/work" {
		t.Fatalf("after the move, the command typed wrote %q", got)
	}
	clock, _ := windowRect(b, "desk", "xclock")
	typed := screenshot(t, b, "desk")
	if n, _ := differences(shot, typed, clock); n == 0 {
		t.Errorf("the terminal does not show the command typed after the move")
	}

	lan.StartDock(t, 0, pki)
	b.MustPodctl("migrate", "desk", "--to", lan.DockAddr(0), "--live", "--pki", pki)
	unchanged(a, typed, "after the live migration back to A")
	viewed("after the live migration back to A")
}

// TestDesktopBadInput: what create --desktop cannot make is refused with
// one line, and nothing is left behind.
func TestDesktopBadInput(t *testing.T) {
	harness.RequireRoot(t)
	needDesktop(t)
	h := newHost(t)
	pw := filepath.Join(t.TempDir(), "vncpass")
	os.WriteFile(pw, []byte(desktopPassword+"\n"), 0o600)
	createDesktop(t, h, "first", "-p", "15900:5900")
	for _, tc := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"app not found", []string{"--desktop", "d1", "--", "no-such-app"}, 11, "no-such-app: command not found"},
		{"bad geometry", []string{"--desktop", "--geometry", "big", "d2"}, 11, `invalid --geometry "big"`},
		{"port taken", []string{"--desktop", "--vnc-password-file", pw, "-p", "15900:5900", "d3"}, 7, "15900"},
		{"geometry without desktop", []string{"--geometry", "800x600", "--", "true"}, 2, "for desktop pods"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.Podctl(append([]string{"create"}, tc.args...)...)
			lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
			if r.Code != tc.code || len(lines) != 1 || !strings.Contains(r.Stderr, tc.says) {
				t.Errorf("exit %d, %q; want exit %d and one line with %q", r.Code, r.Stderr, tc.code, tc.says)
			}
		})
	}
	if got := podNames(t, h); !strings.HasPrefix(got, "first/running/") || strings.Contains(got, " ") {
		t.Errorf("after the refusals the host has %q, want the first desktop only", got)
	}
}
