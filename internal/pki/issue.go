package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/statedir"
)

// Issue creates a key and a certificate for name, signed by the CA in dir,
// and writes them to dir as NAME-key.pem (mode 0600) and NAME.pem. The
// certificate is valid for one year, for both TLS server and client
// authentication, with hosts as its subject alternative names: each host
// is an IP address or a DNS name. A client takes the node's dock only at
// one of them (see ClientConfig). An existing certificate for name is
// replaced (this is how one renews it).
//
// The CA key must be in dir: Issue runs on the host that ran Init.
func Issue(dir, name string, hosts []string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	var ips []net.IP
	var dns []string
	for _, h := range hosts {
		if ip, err := netip.ParseAddr(h); err == nil {
			if ip.Zone() != "" {
				return errdefs.New(errdefs.InvalidArgument, "pki issue %s: host %q: an address in a certificate cannot have a zone", name, h)
			}
			ips = append(ips, net.IP(ip.AsSlice()))
			continue
		}
		if !validDNSName(h) {
			return errdefs.New(errdefs.InvalidArgument, "pki issue %s: host %q is neither an IP address nor a DNS name", name, h)
		}
		dns = append(dns, h)
	}
	ca, err := loadCA(dir)
	if err != nil {
		return fmt.Errorf("pki issue %s: %w", name, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki issue %s: generate key: %w", name, err)
	}
	serial, err := newSerial()
	if err != nil {
		return fmt.Errorf("pki issue %s: %w", name, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"podctl"}, CommonName: name},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CertValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return fmt.Errorf("pki issue %s: create certificate: %w", name, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return fmt.Errorf("pki issue %s: %w", name, err)
	}
	// The key first: a reader that sees the new certificate then finds
	// its key. (One that reads between the two writes sees a mismatched
	// pair and fails; it can retry.)
	if err := statedir.WriteFileAtomic(filepath.Join(dir, KeyFile(name)), keyPEM, 0o600); err != nil {
		return fmt.Errorf("pki issue %s: %w", name, err)
	}
	if err := statedir.WriteFileAtomic(filepath.Join(dir, CertFile(name)), encodeCert(der), 0o644); err != nil {
		return fmt.Errorf("pki issue %s: %w", name, err)
	}
	return nil
}

// validDNSName reports whether s is a plausible DNS name for a certificate:
// dot-separated labels of 1-63 letters, digits, '-' or '_', not starting
// or ending with '-', 253 bytes at most. A leading "*." (a wildcard) is
// allowed.
func validDNSName(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
