// Package pki creates and loads the mutual-TLS material podctl docks use.
//
// A cluster has one certificate authority, kept in a directory as ca.pem
// and ca-key.pem. Every host gets a certificate signed by it (NAME.pem and
// NAME-key.pem in the same directory), usable both as a TLS server (a dock
// receiving a migration) and as a TLS client (a host sending one). A dock
// accepts a connection only from a peer presenting a certificate signed by
// the cluster's CA, and a sender talks only to a dock holding one. A
// certificate listed in the directory's revoked.txt (Revoke) is refused
// by both.
package pki

import (
	"crypto/x509"

	"github.com/podctl/podctl/internal/errdefs"
)

// File names inside a PKI directory.
const (
	// CACert is the CA certificate's file name.
	CACert = "ca.pem"
	// CAKey is the CA private key's file name.
	CAKey = "ca-key.pem"
	// RevokedFile is the file name of the list of revoked certificates
	// (see Revoke).
	RevokedFile = "revoked.txt"
)

// CertFile returns the file name of NAME's certificate.
func CertFile(name string) string { return name + ".pem" }

// KeyFile returns the file name of NAME's private key.
func KeyFile(name string) string { return name + "-key.pem" }

// Serial formats cert's serial number the way podctl writes it in logs
// and revoked.txt: lowercase hexadecimal, without leading zeros.
func Serial(cert *x509.Certificate) string { return cert.SerialNumber.Text(16) }

// ValidateName reports whether name may name an issued certificate:
// 1 to 63 ASCII letters, digits, '-', '_' or '.', and not "." or "..". It
// returns an errdefs.InvalidName error otherwise.
func ValidateName(name string) error {
	if len(name) == 0 || len(name) > 63 || name == "." || name == ".." {
		return errdefs.New(errdefs.InvalidName, "invalid certificate name %q: want 1-63 letters, digits, '-', '_' or '.'", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return errdefs.New(errdefs.InvalidName, "invalid certificate name %q: want 1-63 letters, digits, '-', '_' or '.'", name)
		}
	}
	// "ca" would overwrite the CA's own files.
	if name == "ca" {
		return errdefs.New(errdefs.InvalidName, "invalid certificate name %q: reserved for the CA", name)
	}
	return nil
}
