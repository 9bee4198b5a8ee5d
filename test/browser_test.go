package test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"image/png"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/podctl/podctl/test/harness"
)

// noVNCPage is a headless Chromium, run in the LAN's client namespace,
// showing a desktop pod's noVNC page.
type noVNCPage struct {
	ctx context.Context
}

// wsWatch counts the page's WebSockets as they open and close, set up
// before the page's own scripts run. The constructor returns the real
// socket, whose own prototype noVNC checks (a subclass fails that check).
const wsWatch = `window.__ws = {opened: 0, closed: 0};
(() => {
	const W = window.WebSocket;
	function Watched(...args) {
		const s = new W(...args);
		window.__ws.opened++;
		s.addEventListener('close', () => window.__ws.closed++);
		return s;
	}
	Watched.prototype = W.prototype;
	for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) Watched[k] = W[k];
	window.WebSocket = Watched;
})();`

// openNoVNC opens the noVNC page of the desktop pod at ip (its port
// 5800) in Chromium, in the client namespace of lan, logged in with
// password, and waits until the page's canvas shows the desktop.
func openNoVNC(t *testing.T, lan *harness.LAN, ip, password string) *noVNCPage {
	t.Helper()
	chromium := harness.NeedTool(t, "chromium", "chromium")
	wrapper := filepath.Join(t.TempDir(), "chromium-in-client")
	script := "#!/bin/sh\nexec nsenter --net=" + lan.ClientNSPath + " -- " + chromium + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(wrapper), chromedp.NoSandbox, chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	q := url.Values{"autoconnect": {"true"}, "password": {password}, "resize": {"off"}, "reconnect": {"false"}}
	u := "http://" + net.JoinHostPort(ip, "5800") + "/vnc.html?" + q.Encode()
	err := chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: wsWatch})
			return err
		}),
		chromedp.Navigate(u))
	if err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	p := &noVNCPage{ctx: ctx}
	harness.Eventually(t, 30*time.Second, func() error {
		opened, closed, err := p.sockets()
		if err != nil {
			return err
		}
		if opened != 1 || closed != 0 {
			return fmt.Errorf("the page opened %d WebSockets and closed %d", opened, closed)
		}
		_, err = p.canvas()
		return err
	})
	return p
}

// sockets is how many WebSockets the page opened and how many closed.
func (p *noVNCPage) sockets() (opened, closed int, err error) {
	type counts struct {
		Opened int `json:"opened"`
		Closed int `json:"closed"`
	}
	ws, err := chromedp.Run(p.ctx, chromedp.Evaluate[counts](`({opened: window.__ws.opened, closed: window.__ws.closed})`))
	return ws.Opened, ws.Closed, err
}

// canvas is what the page's canvas shows, once it shows a screen.
func (p *noVNCPage) canvas() (image.Image, error) {
	data, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`(() => {
		const c = document.querySelector('#noVNC_container canvas');
		return c && c.width > 1 ? c.toDataURL('image/png') : '';
	})()`))
	if err != nil {
		return nil, err
	}
	b64, ok := strings.CutPrefix(data, "data:image/png;base64,")
	if !ok {
		return nil, fmt.Errorf("the page shows no screen yet")
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, err
	}
	return png.Decode(bytes.NewReader(b))
}

// shows waits until the page's canvas shows want outside skip (the
// clock), and fails if the page's WebSocket closed.
func (p *noVNCPage) shows(t *testing.T, want image.Image, skip image.Rectangle, when string) {
	t.Helper()
	harness.Eventually(t, 20*time.Second, func() error {
		if opened, closed, err := p.sockets(); err != nil || opened != 1 || closed != 0 {
			t.Fatalf("%s: the page opened %d WebSockets and closed %d (%v)", when, opened, closed, err)
		}
		got, err := p.canvas()
		if err != nil {
			return err
		}
		if n, within := differences(want, got, skip); n != 0 {
			return fmt.Errorf("%s: the page's canvas differs from the screen in %d pixels outside the clock, within %v", when, n, within)
		}
		return nil
	})
}
