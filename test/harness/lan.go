package harness

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// LAN is several hosts on one Ethernet segment, as for migration tests:
//
//   - a "LAN" network namespace holding the switch, a bridge lan0 (no
//     address, STP off, forwarding delay 0);
//   - Hosts, each a Host whose podctl runs with --uplink uplink0 (see
//     Host.Flags): uplink0 is a veth whose peer is a port of lan0, so when
//     podctl creates the default network's bridge (podbr0) it enslaves
//     uplink0 to it and the pods of every host share the LAN. Each host
//     also has mgmt0, another veth onto lan0, with the management address
//     HostAddr(i) (192.0.2.10+i/24), where its dock listens (StartDock);
//   - a client namespace (Client) on lan0 with ClientAddr (10.88.255.254/16,
//     inside the pods' subnet, so it reaches a pod at its address on
//     whichever host the pod runs) and ClientMgmtAddr (192.0.2.250/24).
//
// Create pods on one host only (Hosts[0], say); the others should only
// receive migrated pods. Each host's podctl allocates pod addresses on
// its own, from 10.88.0.2 up, so pods created on two hosts would get the
// same address (and MAC) and conflict on the LAN. Likewise every host's
// podbr0 has the same gateway address and MAC (10.88.0.1,
// 02:50:0a:58:00:01), by design; the client therefore talks to pods
// directly at L2, never through a gateway.
//
// Everything is torn down when the test ends: docks stopped, pods removed,
// namespaces deleted. No interface is ever created in the test's own
// namespace: every veth is created in the LAN namespace with its peer
// directly in the host's or client's.
type LAN struct {
	// Name and NSPath are the LAN (switch) namespace's.
	Name, NSPath string
	Hosts        []*Host
	// ClientName and ClientNSPath are the client namespace's.
	ClientName, ClientNSPath string
}

// The LAN's fixed names and addresses.
const (
	LANBridge      = "lan0"
	UplinkIf       = "uplink0"
	MgmtIf         = "mgmt0"
	ClientAddr     = "10.88.255.254"
	ClientMgmtAddr = "192.0.2.250"
	// DockPort is the port StartDock's docks listen on.
	DockPort = 7070
)

// maxLANHosts keeps host addresses (192.0.2.10+i) below the client's.
const maxLANHosts = 240

// NewLAN builds a LAN of n hosts running binary.
func NewLAN(tb testing.TB, binary string, n int) *LAN {
	tb.Helper()
	if n < 1 || n > maxLANHosts {
		tb.Fatalf("NewLAN: %d hosts, want 1 to %d", n, maxLANHosts)
	}
	suffix := randHex(3)
	l := &LAN{Name: "podctl-l-" + suffix, ClientName: "podctl-c-" + suffix}
	l.NSPath, l.ClientNSPath = "/run/netns/"+l.Name, "/run/netns/"+l.ClientName
	// Registered before the hosts are made, so it runs after theirs: the
	// switch goes last.
	tb.Cleanup(func() {
		netns.DeleteNamed(l.ClientName)
		netns.DeleteNamed(l.Name)
	})
	for _, ns := range []string{l.Name, l.ClientName} {
		ipCmd(tb, "netns", "add", ns)
		ipCmd(tb, "-n", ns, "link", "set", "lo", "up")
	}
	ipCmd(tb, "-n", l.Name, "link", "add", LANBridge, "type", "bridge", "stp_state", "0", "forward_delay", "0")
	ipCmd(tb, "-n", l.Name, "link", "set", LANBridge, "up")

	for i := 0; i < n; i++ {
		h := NewHost(tb, binary)
		h.Flags = append(h.Flags, "--uplink", UplinkIf)
		l.Hosts = append(l.Hosts, h)
		l.plug(tb, fmt.Sprintf("h%dup", i), h.Name, UplinkIf)
		l.plug(tb, fmt.Sprintf("h%dmg", i), h.Name, MgmtIf)
		ipCmd(tb, "-n", h.Name, "addr", "add", l.HostAddr(i)+"/24", "dev", MgmtIf)
	}
	l.plug(tb, "client", l.ClientName, "eth0")
	ipCmd(tb, "-n", l.ClientName, "addr", "add", ClientAddr+"/16", "dev", "eth0")
	ipCmd(tb, "-n", l.ClientName, "addr", "add", ClientMgmtAddr+"/24", "dev", "eth0")
	return l
}

// plug connects namespace ns to the switch: a veth pair created in the LAN
// namespace, port (a lan0 port, up) there and peer (up, no address) in ns.
func (l *LAN) plug(tb testing.TB, port, ns, peer string) {
	tb.Helper()
	ipCmd(tb, "-n", l.Name, "link", "add", port, "type", "veth", "peer", "name", peer, "netns", ns)
	ipCmd(tb, "-n", l.Name, "link", "set", port, "master", LANBridge, "up")
	ipCmd(tb, "-n", ns, "link", "set", peer, "up")
}

// HostAddr is host i's management address (192.0.2.10+i), on mgmt0.
func (l *LAN) HostAddr(i int) string {
	return "192.0.2." + strconv.Itoa(10+i)
}

// DockAddr is HOST:PORT of host i's dock (see StartDock).
func (l *LAN) DockAddr(i int) string {
	return net.JoinHostPort(l.HostAddr(i), strconv.Itoa(DockPort))
}

// Client returns an unstarted command that runs argv in the client
// namespace.
func (l *LAN) Client(argv ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + l.ClientNSPath, "--"}, argv...)...)
}

// RunClient runs argv in the client namespace and returns its result.
func (l *LAN) RunClient(argv ...string) Result {
	return new(Host).RunCmd(l.Client(argv...))
}

// PKI makes a certificate authority and a certificate "node" for every
// host's management address in a new temporary directory, with podctl pki
// init and issue, and returns the directory (for StartDock and podctl
// migrate --pki DIR --cert node).
func (l *LAN) PKI(tb testing.TB) string {
	tb.Helper()
	return l.PKIIn(tb, tb.TempDir()+"/pki")
}

// PKIIn is PKI in the directory dir, which it makes.
func (l *LAN) PKIIn(tb testing.TB, dir string) string {
	tb.Helper()
	bin := l.Hosts[0].Binary
	issue := []string{"pki", "issue", dir, "node"}
	for i := range l.Hosts {
		issue = append(issue, "--host", l.HostAddr(i))
	}
	for _, args := range [][]string{{"pki", "init", dir}, issue} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			tb.Fatalf("podctl %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

// Dock is a `podctl dock` running in a LAN host.
type Dock struct {
	// Host is the host it runs in; Addr is HOST:PORT it listens on.
	Host *Host
	Addr string
	cmd  *exec.Cmd
	out  SyncBuffer
	done chan struct{}
	err  error // of Wait, once done is closed
}

// dockStartTimeout bounds how long StartDock waits for the dock to accept
// connections.
const dockStartTimeout = 20 * time.Second

// StartDock starts `podctl dock --listen 0.0.0.0:7070 --pki pkiDir --cert
// node` in host i and waits until it is ready: it has recovered what an
// earlier dock left and accepts connections on the host's management
// address. It is stopped (SIGTERM, then SIGKILL) when the test
// ends, before the host is torn down.
func (l *LAN) StartDock(tb testing.TB, i int, pkiDir string) *Dock {
	tb.Helper()
	return l.StartDockEnv(tb, i, pkiDir)
}

// StartDockEnv is StartDock with extra environment variables for the dock
// (a failpoint, say).
func (l *LAN) StartDockEnv(tb testing.TB, i int, pkiDir string, env ...string) *Dock {
	tb.Helper()
	return l.StartDockWith(tb, i, pkiDir, nil, env...)
}

// StartDockWith is StartDockEnv with more arguments for `podctl dock`.
func (l *LAN) StartDockWith(tb testing.TB, i int, pkiDir string, args []string, env ...string) *Dock {
	tb.Helper()
	h := l.Hosts[i]
	d := &Dock{Host: h, Addr: l.DockAddr(i), done: make(chan struct{})}
	argv := append([]string{"dock", "--listen", "0.0.0.0:" + strconv.Itoa(DockPort), "--pki", pkiDir, "--cert", "node"}, args...)
	d.cmd = h.Command(h.PodctlArgv(argv...)...)
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.out
	if err := d.cmd.Start(); err != nil {
		tb.Fatalf("start dock on host %d: %v", i, err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	tb.Cleanup(d.stop)

	deadline := time.Now().Add(dockStartTimeout)
	delay := 5 * time.Millisecond
	for {
		err := d.ready(h)
		if err == nil {
			return d
		}
		select {
		case <-d.done:
			tb.Fatalf("dock on host %d exited before accepting connections (%v); its output:\n%s", i, d.err, d.Stderr())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("dock on host %d does not accept connections at %s within %v: %v; its output:\n%s", i, d.Addr, dockStartTimeout, err, d.Stderr())
		}
		select {
		case <-d.done:
		case <-time.After(delay):
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

// ready reports whether the dock serves: it has logged that it is
// ready, which it does once it has recovered what an earlier dock left
// (it binds its port before that, so a TCP connection alone proves
// nothing), and its address is reachable from host h.
func (d *Dock) ready(h *Host) error {
	if !strings.Contains(d.out.String(), `msg="`+dockReadyMessage+`"`) {
		return errors.New("dock has not logged that it is ready")
	}
	return dialIn(h.NSPath, d.Addr, time.Second)
}

// dockReadyMessage is what `podctl dock` logs once it serves.
const dockReadyMessage = "dock ready"

// Stderr is everything the dock has written so far (stdout and stderr).
func (d *Dock) Stderr() string { return d.out.String() }

// Kill kills the dock with SIGKILL, as a crash would, and waits for it to
// be gone.
func (d *Dock) Kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// Pid is the dock's process ID on the host.
func (d *Dock) Pid() int { return d.cmd.Process.Pid }

// Exited reports whether the dock process has ended.
func (d *Dock) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// ExitCode is the exit status of a dock that has ended (-1 if a signal
// ended it, or it still runs).
func (d *Dock) ExitCode() int {
	if !d.Exited() {
		return -1
	}
	return d.cmd.ProcessState.ExitCode()
}

// Stop stops the dock (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (d *Dock) Stop() { d.stop() }

func (d *Dock) stop() {
	if d.Exited() {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.Kill()
	}
}

// dialIn opens (and closes) a TCP connection to addr from the network
// namespace at nsPath.
func dialIn(nsPath, addr string, timeout time.Duration) error {
	conn, err := DialIn(nsPath, addr, timeout)
	if err == nil {
		conn.Close()
	}
	return err
}

// DialIn opens a TCP connection to addr from the network namespace at
// nsPath; it then works from any goroutine.
func DialIn(nsPath, addr string, timeout time.Duration) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	res := make(chan result, 1)
	go func() {
		// The thread is given back only if it is back in the test's
		// namespace; otherwise it ends with this goroutine.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(nsPath)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			res <- result{err: err}
			return
		}
		// An address literal with no fallback: the socket is made on this
		// thread, in the target namespace.
		conn, err := net.DialTimeout("tcp", addr, timeout)
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		res <- result{conn, err}
	}()
	r := <-res
	return r.conn, r.err
}

// ipCmd runs ip(8) with args in the test's namespace (use -n NS for
// another) and fails the test if it fails.
func ipCmd(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ip %v: %v\n%s", args, err, out)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// SyncBuffer is a bytes.Buffer that a process may write while a test
// reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
