package pki

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/statedir"
)

// A PKI directory may hold revoked.txt, the certificates that docks and
// migrate refuse: one line per certificate, its serial number in
// hexadecimal, the node's name and when it was revoked, for example
//
//	3f2a9c0e5d6b4a718293a4b5c6d7e8f9 node-2 2025-06-01T12:00:00Z
//
// Blank lines and lines starting with '#' are ignored; only the serial
// counts. A missing file revokes nothing. It is a list of serials rather
// than of names because what is revoked is a key: a node's name issued
// anew gets a new serial and is accepted again, while the old
// certificate stays refused.

// revokeLock is the lock file that serializes changes to revoked.txt.
const revokeLock = ".revoked.lock"

// RevokedError is the error of a TLS handshake with a peer whose
// certificate is in revoked.txt.
type RevokedError struct {
	// Name is the node name the certificate was issued to (its subject
	// common name).
	Name string
	// Serial is its serial number (see Serial).
	Serial string
}

func (e *RevokedError) Error() string {
	return fmt.Sprintf("certificate of node %s (serial %s) is revoked", e.Name, e.Serial)
}

// Revoke records the certificate in dir's NAME.pem as revoked: it adds
// its serial number to dir's revoked.txt, which docks and migrate read on
// every handshake. Revoking a certificate again changes nothing. Revoke
// before issuing NAME anew, which replaces NAME.pem: the old certificate
// can then no longer be named. revoked.txt must then be copied to every
// node's PKI directory, like ca.pem.
func Revoke(dir, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	certPath := filepath.Join(dir, CertFile(name))
	if _, err := os.Stat(certPath); errors.Is(err, fs.ErrNotExist) {
		return errdefs.New(errdefs.NotFound, "pki revoke %s: %s not found", name, certPath)
	}
	cert, err := readCert(certPath, "")
	if err != nil {
		return fmt.Errorf("pki revoke %s: %w", name, err)
	}
	lock, err := statedir.AcquireLock(context.Background(), filepath.Join(dir, revokeLock))
	if err != nil {
		return fmt.Errorf("pki revoke %s: %w", name, err)
	}
	defer lock.Unlock()
	path := filepath.Join(dir, RevokedFile)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pki revoke %s: %w", name, err)
	}
	revoked, err := parseRevoked(path, data)
	if err != nil {
		return fmt.Errorf("pki revoke %s: %w", name, err)
	}
	serial := Serial(cert)
	if _, ok := revoked[serial]; ok {
		return nil
	}
	if len(data) == 0 {
		data = []byte("# Certificates podctl refuses: serial (hex), node name, when revoked.\n" +
			"# Written by podctl pki revoke; copy it to every node's PKI directory.\n")
	} else if data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	data = fmt.Appendf(data, "%s %s %s\n", serial, cert.Subject.CommonName, time.Now().UTC().Format(time.RFC3339))
	if err := statedir.WriteFileAtomic(path, data, 0o644); err != nil {
		return fmt.Errorf("pki revoke %s: %w", name, err)
	}
	return nil
}

// parseRevoked parses the content of revoked.txt (path, for errors): it
// returns the set of revoked serial numbers, as Serial formats them, each
// with the name on its line.
func parseRevoked(path string, data []byte) (map[string]string, error) {
	revoked := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		serial, ok := new(big.Int).SetString(fields[0], 16)
		if !ok || serial.Sign() < 0 {
			return nil, errdefs.New(errdefs.InvalidArgument, "%s:%d: %q is not a serial number in hexadecimal", path, n, fields[0])
		}
		name := ""
		if len(fields) > 1 {
			name = fields[1]
		}
		revoked[serial.Text(16)] = name
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return revoked, nil
}

// revocations is a PKI directory's revoked.txt as a TLS configuration
// checks it on every handshake. The file is read again only when it has
// changed (another file, size or modification time), so a running dock
// notices a revocation at its next handshake for the cost of one stat.
type revocations struct {
	path string

	mu      sync.Mutex
	fi      fs.FileInfo       // of the file last read; nil if none was
	revoked map[string]string // serial → node name
}

func newRevocations(dir string) *revocations {
	return &revocations{path: filepath.Join(dir, RevokedFile)}
}

// load returns the revoked serial numbers, reading the file again if it
// has changed since it was last read. An unreadable or malformed file is
// an error: a configuration that cannot tell whether a certificate is
// revoked refuses it.
func (r *revocations) load() (map[string]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fi, err := os.Stat(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		r.fi, r.revoked = nil, nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("revoked certificates: %w", err)
	}
	if r.fi != nil && os.SameFile(r.fi, fi) && r.fi.Size() == fi.Size() && r.fi.ModTime().Equal(fi.ModTime()) {
		return r.revoked, nil
	}
	f, err := os.Open(r.path)
	if err != nil {
		return nil, fmt.Errorf("revoked certificates: %w", err)
	}
	defer f.Close()
	// The file's own state, not the earlier Stat's: a replacement in
	// between is then noticed at the next check.
	if fi, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("revoked certificates: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("revoked certificates: read %s: %w", r.path, err)
	}
	revoked, err := parseRevoked(r.path, data)
	if err != nil {
		return nil, fmt.Errorf("revoked certificates: %w", err)
	}
	r.fi, r.revoked = fi, revoked
	return revoked, nil
}

// check returns a *RevokedError if cert is revoked, and an error if the
// list cannot be read.
func (r *revocations) check(cert *x509.Certificate) error {
	revoked, err := r.load()
	if err != nil {
		return err
	}
	serial := Serial(cert)
	if _, ok := revoked[serial]; ok {
		return &RevokedError{Name: cert.Subject.CommonName, Serial: serial}
	}
	return nil
}

// checkPeer checks the certificate a peer presented in a handshake.
func (r *revocations) checkPeer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("peer presented no certificate")
	}
	return r.check(cs.PeerCertificates[0])
}
