package test

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// serve starts a pod running an HTTP server on port 8000 that answers with
// its own name, and waits until it answers from the host.
func serve(t *testing.T, h *harness.Host, name string, extra ...string) harness.PodInfo {
	t.Helper()
	args := append([]string{"create", "--name", name}, extra...)
	args = append(args, "--", "sh", "-c", "mkdir -p /srv && echo "+name+" > /srv/index.html && cd /srv && exec python3 -m http.server 8000")
	h.MustPodctl(args...)
	p := h.Inspect(name)
	waitHTTP(t, h, "http://"+p.Endpoint.IP+":8000/", name)
	return p
}

func waitHTTP(t *testing.T, h *harness.Host, url, want string) {
	t.Helper()
	harness.Eventually(t, 15*time.Second, func() error {
		r := h.Run("curl", "-sS", "--max-time", "2", url)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != want {
			return fmt.Errorf("curl %s: code %d out %q err %q", url, r.Code, r.Stdout, r.Stderr)
		}
		return nil
	})
}

// reach reports whether pod from can fetch url.
func reach(h *harness.Host, from, url string) bool {
	return h.Podctl("exec", from, "--", "curl", "-sS", "--max-time", "2", url).Code == 0
}

func TestPublishedPort(t *testing.T) {
	h := newHost(t)
	serve(t, h, "web", "-p", "18080:8000")
	// From the host, through its loopback and through the bridge address.
	waitHTTP(t, h, "http://127.0.0.1:18080/", "web")
	waitHTTP(t, h, "http://10.88.0.1:18080/", "web")

	// UDP: an echo server behind a published UDP port.
	h.MustPodctl("create", "--name", "udp", "-p", "18082:9000/udp", "--", "python3", "-c", `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 9000))
while True:
    d, a = s.recvfrom(100); s.sendto(b"echo " + d, a)`)
	harness.Eventually(t, 15*time.Second, func() error {
		r := h.Run("python3", "-c", `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5)
s.sendto(b"ping", ("127.0.0.1", 18082)); print(s.recv(100).decode())`)
		if r.Stdout != "echo ping\n" {
			return fmt.Errorf("udp echo through published port: %q %s", r.Stdout, r.Stderr)
		}
		return nil
	})
}

// TestEgressMasquerade: a pod reaches the outside world, which has no route
// back to pod subnets and so sees the host's address, not the pod's.
func TestEgressMasquerade(t *testing.T) {
	h := newHost(t)
	w := h.AddWorld(t)
	h.MustPodctl("create", "--name", "out", "--", "sleep", "1000")
	ln := w.Command("python3", "-c", `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 18099)); s.listen(1); print("up", flush=True)
c, a = s.accept(); c.sendall(b"hello " + a[0].encode() + b"\n"); c.close()`)
	out := &strings.Builder{}
	ln.Stdout = out
	if err := ln.Start(); err != nil {
		t.Fatal(err)
	}
	defer ln.Process.Kill()
	harness.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(out.String(), "up") {
			return fmt.Errorf("listener not up")
		}
		return nil
	})
	got := h.MustPodctl("exec", "out", "--", "python3", "-c",
		`import socket; s=socket.create_connection(("`+w.Addr+`",18099),timeout=5); print(s.recv(100).decode().strip())`)
	if got != "hello "+w.HostAddr+"\n" {
		t.Errorf("the world saw %q, want the host's masqueraded address %s", got, w.HostAddr)
	}
}

func TestNetworkIsolation(t *testing.T) {
	h := newHost(t)
	a := serve(t, h, "iso-a")
	b := serve(t, h, "iso-b")
	c := serve(t, h, "shared-c", "--network", "blue")
	d := serve(t, h, "shared-d", "--network", "blue")
	e := serve(t, h, "other-e", "--network", "green")

	// Pods on one named network reach each other.
	if !reach(h, "shared-c", "http://"+d.Endpoint.IP+":8000/") || !reach(h, "shared-d", "http://"+c.Endpoint.IP+":8000/") {
		t.Errorf("pods on network blue cannot reach each other")
	}
	// Pods on the default network do not, and no network reaches another.
	for _, tc := range []struct{ from, to string }{
		{"iso-a", b.Endpoint.IP}, {"iso-b", a.Endpoint.IP},
		{"iso-a", c.Endpoint.IP}, {"shared-c", a.Endpoint.IP},
		{"shared-c", e.Endpoint.IP}, {"other-e", d.Endpoint.IP},
	} {
		if reach(h, tc.from, "http://"+tc.to+":8000/") {
			t.Errorf("%s reached %s", tc.from, tc.to)
		}
	}
	// Each pod still reaches its gateway (the host).
	for _, p := range []string{"iso-a", "shared-c", "other-e"} {
		if r := h.Podctl("exec", p, "--", "sh", "-c", "ip route | grep -q '^default via'"); r.Code != 0 {
			t.Errorf("%s has no default route", p)
		}
	}
	// A named network goes away with its last pod.
	h.MustPodctl("rm", "-f", "other-e")
	if r := h.Run("ip", "link", "show", "podbr2"); r.Code == 0 {
		t.Errorf("bridge of network green survives its last pod")
	}
}

func TestRemoveLeavesNothing(t *testing.T) {
	h := newHost(t)
	p := serve(t, h, "gone", "-p", "18081:8000", "--memory", "128m")
	if left := h.Leftovers(p); len(left) < 4 {
		t.Fatalf("a live pod should have a veth, rule, mount, cgroup, lease and directory; found only %v", left)
	}
	h.MustPodctl("rm", "-f", "gone")
	if left := h.Leftovers(p); len(left) != 0 {
		t.Errorf("left behind by rm: %v", left)
	}
	if r := h.Podctl("inspect", "gone"); r.Code == 0 {
		t.Errorf("inspect of a removed pod succeeded")
	}
	// The published port is free again.
	serve(t, h, "again", "-p", "18081:8000")
}

func TestConcurrentCreate(t *testing.T) {
	h := newHost(t)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := h.Podctl("create", "--name", fmt.Sprintf("c%02d", i), "--", "sh", "-c", "while true; do sleep 1; done")
			if r.Code != 0 {
				errs <- fmt.Errorf("create c%02d: %s", i, r.Stderr)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	pods, err := h.Pods()
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != n {
		t.Fatalf("%d pods listed, want %d", len(pods), n)
	}
	ips := map[string]string{}
	var infos []harness.PodInfo
	for _, p := range pods {
		info := h.Inspect(p.Name)
		infos = append(infos, info)
		if other, dup := ips[info.Endpoint.IP]; dup {
			t.Errorf("%s and %s share %s", p.Name, other, info.Endpoint.IP)
		}
		ips[info.Endpoint.IP] = p.Name
		if net.ParseIP(info.Endpoint.IP) == nil || info.Status != "running" {
			t.Errorf("%s: ip %q status %q", p.Name, info.Endpoint.IP, info.Status)
		}
		// Each pod works: it answers ping from the host on its own address.
		if r := h.Run("ping", "-c", "1", "-W", "2", info.Endpoint.IP); r.Code != 0 {
			t.Errorf("%s (%s) does not answer ping: %s", p.Name, info.Endpoint.IP, r.Stdout)
		}
	}
	var rmwg sync.WaitGroup
	for _, p := range pods {
		rmwg.Add(1)
		go func(name string) {
			defer rmwg.Done()
			if r := h.Podctl("rm", "-f", name); r.Code != 0 {
				t.Errorf("rm %s: %s", name, r.Stderr)
			}
		}(p.Name)
	}
	rmwg.Wait()
	for _, info := range infos {
		if left := h.Leftovers(info); len(left) != 0 {
			t.Errorf("%s left %v", info.Name, left)
		}
	}
}
