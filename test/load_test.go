package test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// loadNginxConf is nginx for the load test: as the benchmarks' (a root
// worker, which CRIU needs), with keep-alive connections that neither
// time out nor end after a number of requests during the test.
var loadNginxConf = strings.Replace(cbNginxConf, "access_log off;", "access_log off;\n  keepalive_timeout 600s;\n  keepalive_requests 100000000;", 1)

// loadConnections is how many keep-alive connections the load keeps busy.
const loadConnections = 32

// TestMigrateUnderLoad migrates nginx A → B → C → A, with stop-and-copy
// and then with --live, while 32 keep-alive connections from a client on
// the LAN keep it busy: no request may fail and no connection may be
// reset. It logs the requests' latency (p50, p99, max) during each move.
func TestMigrateUnderLoad(t *testing.T) {
	harness.RequireRoot(t)
	lan := harness.NewLAN(t, podctlBin, 3)
	pki := lan.PKI(t)
	for i := range lan.Hosts {
		lan.StartDock(t, i, pki)
	}
	a := lan.Hosts[0]
	a.MustPodctl("create", "--name", "web", "--env", "NGINX_CONF="+loadNginxConf, "--", "sh", "-c",
		`mkdir -p /tmp/www && echo hello from nginx > /tmp/www/index.html && printf '%s' "$NGINX_CONF" > /tmp/nginx.conf && exec nginx -c /tmp/nginx.conf -g 'daemon off;'`)
	addr := net.JoinHostPort(a.Inspect("web").Endpoint.IP, "80")
	var conns []net.Conn
	harness.Eventually(t, 20*time.Second, func() error {
		c, err := harness.DialIn(lan.ClientNSPath, addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	for i := 0; i < loadConnections; i++ {
		c, err := harness.DialIn(lan.ClientNSPath, addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	load := startLoad(conns)
	defer load.stop()
	load.wait(t, 1000)

	at := 0
	for _, mode := range []string{"stop-and-copy", "live"} {
		for _, to := range []int{1, 2, 0} {
			argv := []string{"migrate", "web", "--to", lan.DockAddr(to), "--pki", pki}
			if mode == "live" {
				argv = append(argv, "--live")
			}
			start := time.Now()
			lan.Hosts[at].MustPodctl(argv...)
			end := time.Now()
			load.wait(t, 500) // and the connections still serve
			lat := load.latencies(start, end)
			t.Logf("%s to host %d: %d requests started during the move: latency p50 %v, p99 %v, max %v",
				mode, to, len(lat), percentile(lat, 50), percentile(lat, 99), percentile(lat, 100))
			at = to
		}
	}
	ok, failed := load.stop()
	t.Logf("%d requests on %d keep-alive connections", ok, loadConnections)
	if len(failed) > 0 {
		t.Fatalf("%d connections failed: %v", len(failed), failed)
	}
}

// load keeps keep-alive HTTP connections busy, one request at a time on
// each, and records every request's start and latency.
type load struct {
	mu      sync.Mutex
	samples []loadSample
	failed  []error
	quit    chan struct{}
	done    sync.WaitGroup
}

type loadSample struct {
	start   time.Time
	latency time.Duration
}

// startLoad starts one worker per connection.
func startLoad(conns []net.Conn) *load {
	l := &load{quit: make(chan struct{})}
	for _, c := range conns {
		l.done.Add(1)
		go l.worker(c)
	}
	return l
}

// worker sends GET / on c until told to quit; the first failure ends it
// (a keep-alive connection that fails once is lost).
func (l *load) worker(c net.Conn) {
	defer l.done.Done()
	defer c.Close()
	rd := bufio.NewReader(c)
	for {
		select {
		case <-l.quit:
			return
		default:
		}
		start := time.Now()
		err := func() error {
			c.SetDeadline(start.Add(30 * time.Second))
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: web\r\n\r\n"); err != nil {
				return err
			}
			resp, err := http.ReadResponse(rd, nil)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK || string(body) != "hello from nginx\n" {
				return fmt.Errorf("status %d, body %q", resp.StatusCode, body)
			}
			return nil
		}()
		l.mu.Lock()
		if err != nil {
			l.failed = append(l.failed, fmt.Errorf("%s: %w", c.LocalAddr(), err))
			l.mu.Unlock()
			return
		}
		l.samples = append(l.samples, loadSample{start, time.Since(start)})
		l.mu.Unlock()
		time.Sleep(5 * time.Millisecond) // leave the CPU to the migration
	}
}

// wait waits until n more requests have succeeded; it fails the test if
// a connection failed.
func (l *load) wait(t *testing.T, n int) {
	t.Helper()
	l.mu.Lock()
	from := len(l.samples)
	l.mu.Unlock()
	harness.Eventually(t, 60*time.Second, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(l.failed) > 0 {
			t.Fatalf("connections failed: %v", l.failed)
		}
		if got := len(l.samples) - from; got < n {
			return fmt.Errorf("%d requests of %d", got, n)
		}
		return nil
	})
}

// latencies are those of the requests started between from and to.
func (l *load) latencies(from, to time.Time) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Duration
	for _, s := range l.samples {
		if !s.start.Before(from) && s.start.Before(to) {
			out = append(out, s.latency)
		}
	}
	return out
}

// stop ends the load and returns how many requests succeeded and the
// connections' failures.
func (l *load) stop() (ok int, failed []error) {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	l.done.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.samples), l.failed
}

// percentile is the p-th percentile of ds (nearest rank; 100 is the
// maximum), 0 for none.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}
