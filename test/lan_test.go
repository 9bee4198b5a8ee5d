package test

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// echoClient is a python3 program that connects to argv[1]:argv[2], sends
// argv[3], half-closes and prints what comes back.
const echoClient = `
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
s.sendall(sys.argv[3].encode()); s.shutdown(socket.SHUT_WR)
out = b""
while True:
    d = s.recv(100)
    if not d: break
    out += d
print(out.decode(), end="")`

// echoVia polls until run (a command maker for some namespace) gets msg
// echoed back by addr:port.
func echoVia(t *testing.T, what string, run func(argv ...string) harness.Result, addr, port string) {
	t.Helper()
	msg := "hello from " + what
	harness.Eventually(t, 15*time.Second, func() error {
		r := run("python3", "-c", echoClient, addr, port, msg)
		if r.Code != 0 || r.Stdout != msg {
			return fmt.Errorf("%s: echo from %s:%s: code %d, out %q, err %q", what, addr, port, r.Code, r.Stdout, r.Stderr)
		}
		return nil
	})
}

// rootLinks lists the interfaces of the test's own network namespace.
func rootLinks(t *testing.T) []string {
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
		}
	}
	sort.Strings(names)
	return names
}

// startIn starts a long-running command and kills it when the test ends.
func startIn(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
}

// TestLANReachability: on a LAN of three hosts, a pod of host 0 is reached
// at its own address from a client elsewhere on the LAN (through host 0's
// uplink on podbr0), the hosts reach each other's management addresses and
// docks, and pods on the default network of one host are still isolated
// from each other.
func TestLANReachability(t *testing.T) {
	harness.RequireRoot(t)
	harness.NeedTool(t, "socat", "socat")
	// Registered first, so it runs last: the LAN left nothing behind.
	before := rootLinks(t)
	var lan *harness.LAN
	t.Cleanup(func() {
		if after := rootLinks(t); strings.Join(after, " ") != strings.Join(before, " ") {
			t.Errorf("interfaces of the test's namespace: before %v, after %v", before, after)
		}
		if lan == nil {
			return
		}
		names := []string{lan.Name, lan.ClientName}
		for _, h := range lan.Hosts {
			names = append(names, h.Name)
		}
		for _, n := range names {
			if _, err := os.Stat("/run/netns/" + n); err == nil {
				t.Errorf("namespace %s survives the test", n)
			}
		}
	})
	lan = harness.NewLAN(t, podctlBin, 3)
	h0 := lan.Hosts[0]

	// A TCP echo pod on host 0, and a second pod on its default network.
	h0.MustPodctl("create", "--name", "echo", "--", "socat", "TCP-LISTEN:7000,fork,reuseaddr", "EXEC:cat")
	echo := h0.Inspect("echo")
	peer := serve(t, h0, "peer")
	if out := h0.Run("ip", "-o", "link", "show", harness.UplinkIf).Stdout; !strings.Contains(out, "master podbr0") {
		t.Fatalf("uplink not enslaved to podbr0 on host 0: %s", out)
	}

	// The client reaches the pods at their addresses, over the LAN.
	echoVia(t, "client", lan.RunClient, echo.Endpoint.IP, "7000")
	if r := lan.RunClient("curl", "-sS", "--max-time", "3", "http://"+peer.Endpoint.IP+":8000/"); r.Code != 0 || strings.TrimSpace(r.Stdout) != "peer" {
		t.Errorf("client to peer pod: code %d out %q err %q", r.Code, r.Stdout, r.Stderr)
	}
	if r := lan.RunClient("ping", "-c", "1", "-W", "3", echo.Endpoint.IP); r.Code != 0 {
		t.Errorf("client cannot ping the pod: %s%s", r.Stdout, r.Stderr)
	}
	// ... directly at L2: the pod's own MAC answered, not a gateway's.
	if out := lan.RunClient("ip", "neigh", "show", echo.Endpoint.IP).Stdout; !strings.Contains(out, "lladdr "+echo.Endpoint.MAC) {
		t.Errorf("client's neighbour entry for %s is %q, want MAC %s", echo.Endpoint.IP, out, echo.Endpoint.MAC)
	}
	// And the pod reaches the client (ping, and TCP to a client listener).
	if r := h0.Podctl("exec", "echo", "--", "ping", "-c", "1", "-W", "3", harness.ClientAddr); r.Code != 0 {
		t.Errorf("pod cannot ping the client: %s%s", r.Stdout, r.Stderr)
	}
	startIn(t, lan.Client("socat", "TCP-LISTEN:7001,bind="+harness.ClientAddr+",fork,reuseaddr", "EXEC:cat"))
	echoVia(t, "pod", func(argv ...string) harness.Result {
		return h0.Podctl(append([]string{"exec", "echo", "--"}, argv...)...)
	}, harness.ClientAddr, "7001")

	// Pods of one host's default network stay isolated from each other,
	// uplink or not.
	if reach(h0, "echo", "http://"+peer.Endpoint.IP+":8000/") {
		t.Errorf("pod echo reached pod peer on host 0")
	}
	if r := h0.Podctl("exec", "peer", "--", "python3", "-c", echoClient, echo.Endpoint.IP, "7000", "x"); r.Code == 0 {
		t.Errorf("pod peer reached pod echo on host 0: %q", r.Stdout)
	}

	// Management: hosts 1 and 2 and the client reach host 0's address.
	startIn(t, h0.Command("socat", "TCP-LISTEN:7100,bind="+lan.HostAddr(0)+",fork,reuseaddr", "EXEC:cat"))
	for i, h := range lan.Hosts[1:] {
		echoVia(t, fmt.Sprintf("host %d", i+1), h.Run, lan.HostAddr(0), "7100")
	}
	echoVia(t, "client", lan.RunClient, lan.HostAddr(0), "7100")

	// Docks: one on every host, each reachable from the others.
	pki := lan.PKI(t)
	docks := make([]*harness.Dock, len(lan.Hosts))
	for i := range lan.Hosts {
		docks[i] = lan.StartDock(t, i, pki)
	}
	connect := `import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()`
	for i, h := range lan.Hosts {
		j := (i + 1) % len(lan.Hosts)
		if r := h.Run("python3", "-c", connect, lan.HostAddr(j), "7070"); r.Code != 0 {
			t.Errorf("host %d cannot connect to the dock of host %d at %s: %s\ndock output:\n%s", i, j, lan.DockAddr(j), r.Stderr, docks[j].Stderr())
		}
	}
	// A killed dock is gone: its port refuses connections.
	docks[2].Kill()
	if r := lan.Hosts[1].Run("python3", "-c", connect, lan.HostAddr(2), "7070"); r.Code == 0 {
		t.Errorf("the killed dock of host 2 still accepts connections")
	}
}
