package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/statedir"
)

// Validity periods of what Init and Issue create.
const (
	// CAValidity is how long a CA made by Init is valid.
	CAValidity = 10 * 365 * 24 * time.Hour
	// CertValidity is how long a certificate made by Issue is valid.
	CertValidity = 365 * 24 * time.Hour
	// clockSkew backdates certificates so that a peer whose clock is a
	// little behind accepts a certificate issued moments ago.
	clockSkew = time.Hour
)

// Init creates a new certificate authority in dir: an ECDSA P-256 key
// (ca-key.pem, mode 0600) and a self-signed certificate valid for ten years
// (ca.pem). It creates dir with mode 0700 if it is missing. It refuses with
// an errdefs.AlreadyExists error if dir already holds a ca.pem: replacing a
// CA would invalidate every certificate issued by it.
func Init(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki init %s: %w", dir, err)
	}
	certPath := filepath.Join(dir, CACert)
	if _, err := os.Lstat(certPath); err == nil {
		return errdefs.New(errdefs.AlreadyExists, "pki init %s: %s already exists", dir, certPath)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pki init %s: %w", dir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki init %s: generate key: %w", dir, err)
	}
	serial, err := newSerial()
	if err != nil {
		return fmt.Errorf("pki init %s: %w", dir, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"podctl"}, CommonName: "podctl CA"},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("pki init %s: create certificate: %w", dir, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return fmt.Errorf("pki init %s: %w", dir, err)
	}
	// Of two concurrent Inits exactly one must win, and the winner's key
	// must be the one left in ca-key.pem. So the key goes to a name of our
	// own first, the certificate is then linked into place (which fails if
	// ca.pem exists), and only the winner renames its key into place.
	f, err := os.CreateTemp(dir, "."+CAKey+".new-*")
	if err != nil {
		return fmt.Errorf("pki init %s: %w", dir, err)
	}
	f.Close()
	tmpKey := f.Name()
	if err := statedir.WriteFileAtomic(tmpKey, keyPEM, 0o600); err != nil {
		os.Remove(tmpKey)
		return fmt.Errorf("pki init %s: %w", dir, err)
	}
	if err := createFile(certPath, encodeCert(der), 0o644); err != nil {
		os.Remove(tmpKey)
		if errdefs.Is(err, errdefs.AlreadyExists) {
			return errdefs.New(errdefs.AlreadyExists, "pki init %s: %s already exists", dir, certPath)
		}
		return fmt.Errorf("pki init %s: %w", dir, err)
	}
	if err := os.Rename(tmpKey, filepath.Join(dir, CAKey)); err != nil {
		os.Remove(certPath)
		return fmt.Errorf("pki init %s: %w", dir, err)
	}
	return statedir.SyncDir(dir)
}

// ca is a loaded certificate authority.
type ca struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// loadCA reads the CA certificate and key in dir.
func loadCA(dir string) (*ca, error) {
	hint := "podctl pki init " + dir
	cert, err := readCert(filepath.Join(dir, CACert), hint)
	if err != nil {
		return nil, err
	}
	key, err := readKey(filepath.Join(dir, CAKey), hint)
	if err != nil {
		return nil, err
	}
	return &ca{cert: cert, key: key}, nil
}

// newSerial returns a random 128-bit certificate serial number.
func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return s, nil
}
