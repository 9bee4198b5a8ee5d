package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// tcpClient is the client namespace's long-lived connection to a pod.
type tcpClient struct {
	cmd            *exec.Cmd
	out            bytes.Buffer
	stop, progress string
}

func startClient(t testing.TB, lan *harness.LAN, ip string) *tcpClient {
	t.Helper()
	dir := t.TempDir()
	c := &tcpClient{stop: filepath.Join(dir, "stop"), progress: filepath.Join(dir, "progress")}
	c.cmd = lan.Client("python3", "-c", workload(t, "client.py"), ip, "7000", c.stop, c.progress)
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.WriteFile(c.stop, nil, 0o644)
		c.cmd.Process.Kill()
		c.cmd.Wait()
	})
	return c
}

// rounds is how many lines have made the round trip so far.
func (c *tcpClient) rounds() int {
	b, _ := os.ReadFile(c.progress)
	n, _ := strconv.Atoi(string(b))
	return n
}

// advance waits until at least n more lines have made the round trip.
func (c *tcpClient) advance(t testing.TB, n int) {
	t.Helper()
	from := c.rounds()
	harness.Eventually(t, 60*time.Second, func() error {
		if c.cmd.ProcessState != nil {
			return fmt.Errorf("client exited: %s", c.out.String())
		}
		if got := c.rounds(); got < from+n {
			return fmt.Errorf("client at %d round trips, want %d (output %q)", got, from+n, c.out.String())
		}
		return nil
	})
}

// finish stops the client and checks it never saw a line lost, repeated,
// reordered or the connection reset.
func (c *tcpClient) finish(t testing.TB) {
	t.Helper()
	os.WriteFile(c.stop, nil, 0o644)
	if err := c.cmd.Wait(); err != nil || !strings.HasPrefix(c.out.String(), "OK ") {
		t.Fatalf("client: %v: %s", err, c.out.String())
	}
	t.Logf("client: %s", strings.TrimSpace(c.out.String()))
}

// migrateAround moves an echo pod A → B → C → A while a client in the
// client namespace keeps one connection busy, and checks the pod's memory
// at the end.
func migrateAround(t *testing.T, live bool) {
	lan := harness.NewLAN(t, podctlBin, 3)
	pki := lan.PKI(t) // a dock's certificate must name the address migrate --to names
	for i := range lan.Hosts {
		lan.StartDock(t, i, pki)
	}
	a := lan.Hosts[0]
	a.MustPodctl("create", "--name", "echo", "--publish", "17000:7000", "--", "python3", "-c", workload(t, "echo.py"), "64")
	podFile(t, a, "echo", "/tmp/ready")
	ip := a.Inspect("echo").Endpoint.IP
	client := startClient(t, lan, ip)
	client.advance(t, 20)
	for _, hop := range []int{1, 2, 0} {
		from := lan.Hosts[(hop+2)%3]
		to := lan.Hosts[hop]
		args := []string{"migrate", "echo", "--to", lan.HostAddr(hop) + ":7070", "--pki", pki, "--json"}
		if live {
			args = append(args, "--live")
		}
		out := from.MustPodctl(args...)
		t.Logf("migrate to host %d: %s", hop, strings.Join(strings.Fields(out), " "))
		if ps, _ := from.Pods(); len(ps) != 0 {
			t.Fatalf("source still has pods after migration: %+v", ps)
		}
		p := to.Inspect("echo")
		if p.Status != "running" || p.Endpoint.IP != ip {
			t.Fatalf("at host %d: status %s, ip %s (want running, %s)", hop, p.Status, p.Endpoint.IP, ip)
		}
		// Its published port moved with it.
		if got := to.Run("python3", "-c", publishedEcho, "17000").Stdout; got != "hello\n" {
			t.Fatalf("published port 17000 on host %d echoed %q", hop, got)
		}
		client.advance(t, 20)
	}
	a.MustPodctl("exec", "echo", "--", "touch", "/tmp/check")
	if got := strings.TrimSpace(podFile(t, a, "echo", "/tmp/result")); got != "mem-ok" {
		t.Fatalf("memory after three migrations: %s", got)
	}
	client.finish(t)
}

// publishedEcho sends one line to 127.0.0.1:PORT and prints the echo.
const publishedEcho = `import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
c.sendall(b"hello\n")
print(c.makefile("rb").readline().decode(), end="")`

func TestMigrateKeepsTCPConnection(t *testing.T) {
	harness.RequireRoot(t)
	migrateAround(t, false)
}

func TestMigrateLiveKeepsTCPConnectionAndMemory(t *testing.T) {
	harness.RequireRoot(t)
	migrateAround(t, true)
}
