package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
)

// newPKI makes a CA in a fresh directory and issues the named certificates.
func newPKI(t *testing.T, names ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := Init(dir); err != nil {
		t.Fatalf("Init: %v", err)
	}
	for _, n := range names {
		if err := Issue(dir, n, []string{"127.0.0.1", "::1", "host-" + n + ".example"}); err != nil {
			t.Fatalf("Issue(%s): %v", n, err)
		}
	}
	return dir
}

func mustServer(t *testing.T, dir, name string) *tls.Config {
	t.Helper()
	c, err := ServerConfig(dir, name)
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	return c
}

func mustClient(t *testing.T, dir, name string) *tls.Config {
	t.Helper()
	c, err := ClientConfig(dir, name)
	if err != nil {
		t.Fatalf("ClientConfig: %v", err)
	}
	return c
}

// handshake connects a client to a server over loopback TCP. The server
// completes its handshake and writes "ok"; the client completes its
// handshake and reads it. (In TLS 1.3 the client's handshake ends before
// the server has checked the client's certificate, so a client learns of
// its rejection only on its first read.) The client expects the server's
// certificate to be valid for 127.0.0.1 unless its ServerName says
// otherwise.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	if client.ServerName == "" {
		client = client.Clone()
		client.ServerName = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second)
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		tc := tls.Server(c, server)
		if err := tc.Handshake(); err != nil {
			done <- err
			return
		}
		_, err = tc.Write([]byte("ok"))
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(deadline)
	tc := tls.Client(c, client)
	clientErr = tc.Handshake()
	if clientErr == nil {
		buf := make([]byte, 2)
		if _, clientErr = io.ReadFull(tc, buf); clientErr == nil && string(buf) != "ok" {
			t.Fatalf("client read %q, want \"ok\"", buf)
		}
	}
	tc.Close()
	return <-done, clientErr
}

func TestHandshakeAccepted(t *testing.T) {
	dir := newPKI(t, "dock", "sender")
	serr, cerr := handshake(t, mustServer(t, dir, "dock"), mustClient(t, dir, "sender"))
	if serr != nil || cerr != nil {
		t.Fatalf("handshake with CA-signed certificates: server %v, client %v", serr, cerr)
	}
}

func TestHandshakeNoClientCert(t *testing.T) {
	dir := newPKI(t, "dock", "sender")
	client := mustClient(t, dir, "sender")
	client.Certificates = nil
	serr, cerr := handshake(t, mustServer(t, dir, "dock"), client)
	if serr == nil {
		t.Error("server accepted a client without a certificate")
	}
	if cerr == nil {
		t.Error("client without a certificate was not told it was rejected")
	}
}

func TestHandshakeClientFromOtherCA(t *testing.T) {
	dir := newPKI(t, "dock", "sender")
	other := newPKI(t, "intruder")
	// The intruder trusts the dock's CA (so only the server's check can
	// stop the handshake) but its own certificate is from another CA.
	client := mustClient(t, other, "intruder")
	client.RootCAs = mustClient(t, dir, "sender").RootCAs
	serr, cerr := handshake(t, mustServer(t, dir, "dock"), client)
	if serr == nil {
		t.Fatal("server accepted a client certificate from another CA")
	}
	if !strings.Contains(serr.Error(), "certificate") {
		t.Errorf("server error %q: want it to reject the client's certificate", serr)
	}
	if cerr == nil {
		t.Error("rejected client was not told so")
	}
	// With its own configuration the intruder rejects the dock as well.
	if _, cerr := handshake(t, mustServer(t, dir, "dock"), mustClient(t, other, "intruder")); cerr == nil {
		t.Error("client accepted a dock whose certificate is from another CA")
	}
}

func TestHandshakeServerFromOtherCA(t *testing.T) {
	dir := newPKI(t, "sender")
	other := newPKI(t, "impostor")
	// The impostor dock trusts the sender's CA (so only the client's
	// check can stop the handshake) but its own certificate is from
	// another CA.
	server := mustServer(t, other, "impostor")
	server.ClientCAs = mustClient(t, dir, "sender").RootCAs
	serr, cerr := handshake(t, server, mustClient(t, dir, "sender"))
	if cerr == nil {
		t.Fatal("client accepted a dock whose certificate is from another CA")
	}
	var unknown x509.UnknownAuthorityError
	if !errors.As(cerr, &unknown) {
		t.Errorf("client error %q: want it to reject the dock's certificate as of an unknown authority", cerr)
	}
	if serr == nil {
		t.Error("server handshake succeeded although the client aborted")
	}
}

// TestClientChecksHost checks that a client accepts a dock only with a
// certificate valid for the host it connects to, IP address or DNS name,
// and that a certificate for several hosts (one for the whole cluster, as
// the end-to-end tests issue) is valid for each.
func TestClientChecksHost(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	for name, hosts := range map[string][]string{
		"elsewhere": {"192.0.2.7", "elsewhere.example"},
		"nohost":    nil,
		"cluster":   {"192.0.2.10", "127.0.0.1", "192.0.2.12", "dock.example"},
		"sender":    nil,
	} {
		if err := Issue(dir, name, hosts); err != nil {
			t.Fatal(err)
		}
	}
	sender := mustClient(t, dir, "sender")
	for _, tc := range []struct {
		dock, host string
		ok         bool
	}{
		{"elsewhere", "127.0.0.1", false},
		{"nohost", "127.0.0.1", false},
		{"cluster", "127.0.0.1", true},
		{"cluster", "dock.example", true},
		{"cluster", "other.example", false},
		{"elsewhere", "elsewhere.example", true},
	} {
		client := sender.Clone()
		client.ServerName = tc.host
		serr, cerr := handshake(t, mustServer(t, dir, tc.dock), client)
		var hostErr x509.HostnameError
		switch {
		case tc.ok && (serr != nil || cerr != nil):
			t.Errorf("dock %s reached as %s: server %v, client %v", tc.dock, tc.host, serr, cerr)
		case !tc.ok && !errors.As(cerr, &hostErr):
			t.Errorf("dock %s reached as %s: client %v, want the certificate refused for the host", tc.dock, tc.host, cerr)
		}
	}
	// Without a host to check, a connection fails rather than trust any.
	client := sender.Clone()
	client.ServerName = ""
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tls.Client(conn, client).Handshake(); err == nil || !strings.Contains(err.Error(), "ServerName") {
		t.Errorf("a handshake without ServerName = %v, want it refused", err)
	}
}

func TestConfigSettings(t *testing.T) {
	dir := newPKI(t, "dock")
	c := mustServer(t, dir, "dock")
	if c.MinVersion != tls.VersionTLS13 || c.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("ServerConfig: MinVersion %x, ClientAuth %v", c.MinVersion, c.ClientAuth)
	}
	cc := mustClient(t, dir, "dock")
	if cc.MinVersion != tls.VersionTLS13 || cc.InsecureSkipVerify || cc.VerifyConnection == nil {
		t.Errorf("ClientConfig: MinVersion %x, InsecureSkipVerify %v, VerifyConnection set %v",
			cc.MinVersion, cc.InsecureSkipVerify, cc.VerifyConnection != nil)
	}
}

func TestInitTwice(t *testing.T) {
	dir := newPKI(t)
	before, err := os.ReadFile(filepath.Join(dir, CAKey))
	if err != nil {
		t.Fatal(err)
	}
	err = Init(dir)
	if !errdefs.Is(err, errdefs.AlreadyExists) {
		t.Fatalf("second Init = %v, want AlreadyExists", err)
	}
	after, err := os.ReadFile(filepath.Join(dir, CAKey))
	if err != nil || string(after) != string(before) {
		t.Fatalf("second Init changed ca-key.pem (err %v)", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 {
		t.Errorf("directory holds %d entries after a refused Init, want 2 (no temporary files left)", len(ents))
	}
}

func TestFiles(t *testing.T) {
	dir := newPKI(t, "node-1")
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", fi.Mode().Perm())
	}
	for file, mode := range map[string]os.FileMode{
		CACert: 0o644, CAKey: 0o600, CertFile("node-1"): 0o644, KeyFile("node-1"): 0o600,
	} {
		fi, err := os.Stat(filepath.Join(dir, file))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", file, fi.Mode().Perm(), mode)
		}
	}
	ca, err := readCert(filepath.Join(dir, CACert), "")
	if err != nil {
		t.Fatal(err)
	}
	if !ca.IsCA || ca.NotAfter.Before(time.Now().Add(CAValidity-2*time.Hour)) {
		t.Errorf("CA: IsCA %v, NotAfter %v", ca.IsCA, ca.NotAfter)
	}
	leaf, err := readCert(filepath.Join(dir, CertFile("node-1")), "")
	if err != nil {
		t.Fatal(err)
	}
	if leaf.IsCA || leaf.Subject.CommonName != "node-1" {
		t.Errorf("leaf: IsCA %v, CN %q", leaf.IsCA, leaf.Subject.CommonName)
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !leaf.IPAddresses[1].Equal(net.ParseIP("::1")) {
		t.Errorf("leaf IP SANs %v", leaf.IPAddresses)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "host-node-1.example" {
		t.Errorf("leaf DNS SANs %v", leaf.DNSNames)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < CertValidity || got > CertValidity+2*time.Hour {
		t.Errorf("leaf validity %v", got)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("leaf not valid for usage %v: %v", u, err)
		}
	}
}

func TestReissueReplaces(t *testing.T) {
	dir := newPKI(t, "n")
	old, _ := os.ReadFile(filepath.Join(dir, KeyFile("n")))
	if err := Issue(dir, "n", nil); err != nil {
		t.Fatal(err)
	}
	cur, _ := os.ReadFile(filepath.Join(dir, KeyFile("n")))
	if string(old) == string(cur) {
		t.Error("reissue kept the old key")
	}
	if _, err := ServerConfig(dir, "n"); err != nil {
		t.Errorf("ServerConfig after reissue: %v", err)
	}
}

func TestMissingFiles(t *testing.T) {
	empty := t.TempDir()
	err := Issue(empty, "n", nil)
	if !errdefs.Is(err, errdefs.NotFound) || !strings.Contains(err.Error(), "podctl pki init "+empty) {
		t.Errorf("Issue without CA = %v, want NotFound telling to run podctl pki init", err)
	}
	for _, f := range []func(string, string) (*tls.Config, error){ServerConfig, ClientConfig} {
		_, err := f(empty, "n")
		if !errdefs.Is(err, errdefs.NotFound) || !strings.Contains(err.Error(), "podctl pki init "+empty) {
			t.Errorf("config without CA = %v, want NotFound telling to run podctl pki init", err)
		}
	}
	dir := newPKI(t)
	for _, f := range []func(string, string) (*tls.Config, error){ServerConfig, ClientConfig} {
		_, err := f(dir, "n")
		if !errdefs.Is(err, errdefs.NotFound) || !strings.Contains(err.Error(), "podctl pki issue "+dir+" n") {
			t.Errorf("config without certificate = %v, want NotFound telling to run podctl pki issue", err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error %q is not one line", err)
		}
	}
}

func TestInvalidName(t *testing.T) {
	dir := newPKI(t)
	for _, n := range []string{"", ".", "..", "ca", "a/b", "a b", "x\n", strings.Repeat("a", 64), "é"} {
		if err := Issue(dir, n, nil); !errdefs.Is(err, errdefs.InvalidName) {
			t.Errorf("Issue(%q) = %v, want InvalidName", n, err)
		}
		if _, err := ServerConfig(dir, n); !errdefs.Is(err, errdefs.InvalidName) {
			t.Errorf("ServerConfig(%q) = %v, want InvalidName", n, err)
		}
	}
	for _, n := range []string{"a", "node-1", "n_2.x", strings.Repeat("a", 63)} {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v", n, err)
		}
	}
}

func TestInvalidHost(t *testing.T) {
	dir := newPKI(t)
	for _, h := range []string{"", "fe80::1%eth0", "a..b", "-a.example", "a b", "1.2.3.4:80"} {
		if err := Issue(dir, "n", []string{h}); !errdefs.Is(err, errdefs.InvalidArgument) {
			t.Errorf("Issue(host %q) = %v, want InvalidArgument", h, err)
		}
	}
}

func TestRevoke(t *testing.T) {
	dir := newPKI(t, "a", "b")
	leafA, err := readCert(filepath.Join(dir, CertFile("a")), "")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second changes nothing
		if err := Revoke(dir, "a"); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, RevokedFile))
	if err != nil {
		t.Fatal(err)
	}
	var entries []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !strings.HasPrefix(line, "#") {
			entries = append(entries, line)
		}
	}
	if len(entries) != 1 || !strings.HasPrefix(entries[0], Serial(leafA)+" a 20") {
		t.Fatalf("revoked.txt:\n%s\nwant one line: a's serial, its name, the time", data)
	}
	if fi, err := os.Stat(filepath.Join(dir, RevokedFile)); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("revoked.txt: %v, %v; want mode 0644 (it is copied to every node)", fi.Mode(), err)
	}
	if err := Revoke(dir, "c"); !errdefs.Is(err, errdefs.NotFound) {
		t.Errorf("Revoke of a name never issued = %v, want NotFound", err)
	}
	if err := Revoke(dir, "../a"); !errdefs.Is(err, errdefs.InvalidName) {
		t.Errorf("Revoke(../a) = %v, want InvalidName", err)
	}
	// The revoked node's own configurations refuse it; b's are fine.
	for _, f := range []func(string, string) (*tls.Config, error){ServerConfig, ClientConfig} {
		if _, err := f(dir, "a"); !errdefs.Is(err, errdefs.Unsupported) || !strings.Contains(err.Error(), "certificate of node a (serial "+Serial(leafA)+") is revoked") {
			t.Errorf("config of a revoked certificate = %v", err)
		}
		if _, err := f(dir, "b"); err != nil {
			t.Errorf("config of b: %v", err)
		}
	}
	// Issued anew, a has another serial and is not revoked.
	if err := Issue(dir, "a", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ServerConfig(dir, "a"); err != nil {
		t.Errorf("config of a, issued anew: %v", err)
	}
}

// TestRevokedHandshake checks both sides: a dock refuses a revoked client
// and a client a revoked dock, each noticing a revocation made after its
// configuration was built.
func TestRevokedHandshake(t *testing.T) {
	dir := newPKI(t, "dock", "sender")
	server, client := mustServer(t, dir, "dock"), mustClient(t, dir, "sender")
	if serr, cerr := handshake(t, server, client); serr != nil || cerr != nil {
		t.Fatalf("before revocation: server %v, client %v", serr, cerr)
	}
	if err := Revoke(dir, "sender"); err != nil {
		t.Fatal(err)
	}
	var revoked *RevokedError
	serr, cerr := handshake(t, server, client)
	if !errors.As(serr, &revoked) || revoked.Name != "sender" || cerr == nil {
		t.Fatalf("revoked client: server %v, client %v; want the server to refuse it as revoked", serr, cerr)
	}

	dir = newPKI(t, "dock", "sender")
	server, client = mustServer(t, dir, "dock"), mustClient(t, dir, "sender")
	if err := Revoke(dir, "dock"); err != nil {
		t.Fatal(err)
	}
	serr, cerr = handshake(t, server, client)
	if !errors.As(cerr, &revoked) || revoked.Name != "dock" || serr == nil {
		t.Fatalf("revoked dock: server %v, client %v; want the client to refuse it as revoked", serr, cerr)
	}
	if want := "certificate of node dock (serial " + revoked.Serial + ") is revoked"; cerr.Error() != want {
		t.Errorf("client error %q, want %q", cerr, want)
	}
}

// TestRevokedList checks how revoked.txt is read: comments and blank
// lines ignored, serials in either case, changes noticed without a new
// configuration, and a list that cannot be read refusing every peer.
func TestRevokedList(t *testing.T) {
	dir := newPKI(t, "dock", "sender")
	leaf, err := readCert(filepath.Join(dir, CertFile("sender")), "")
	if err != nil {
		t.Fatal(err)
	}
	server, client := mustServer(t, dir, "dock"), mustClient(t, dir, "sender")
	path := filepath.Join(dir, RevokedFile)
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("# nothing yet\n\n")
	if serr, cerr := handshake(t, server, client); serr != nil || cerr != nil {
		t.Fatalf("empty list: server %v, client %v", serr, cerr)
	}
	// An operator's edit, the serial in capitals as openssl prints it.
	write("# revoked by hand\n  " + strings.ToUpper(Serial(leaf)) + "   sender\n")
	var revoked *RevokedError
	if serr, _ := handshake(t, server, client); !errors.As(serr, &revoked) {
		t.Fatalf("after an edit of the list: server %v, want the sender refused", serr)
	}
	write("")
	if serr, cerr := handshake(t, server, client); serr != nil || cerr != nil {
		t.Fatalf("after the list was emptied: server %v, client %v", serr, cerr)
	}
	write("not-hex sender\n")
	// The client reads the same list, and checks first.
	serr, cerr := handshake(t, server, client)
	if serr == nil || cerr == nil || !strings.Contains(cerr.Error(), RevokedFile+":1:") {
		t.Fatalf("malformed list: server %v, client %v; want a refusal naming the line", serr, cerr)
	}
	if _, err := ServerConfig(dir, "dock"); !errdefs.Is(err, errdefs.InvalidArgument) {
		t.Errorf("ServerConfig with a malformed list = %v, want InvalidArgument", err)
	}
	if err := Revoke(dir, "dock"); !errdefs.Is(err, errdefs.InvalidArgument) {
		t.Errorf("Revoke into a malformed list = %v, want InvalidArgument", err)
	}
}
