package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/podctl/podctl/internal/errdefs"
)

// ServerConfig returns the TLS configuration of a dock: TLS 1.3 only,
// presenting NAME's certificate, and requiring every client to present a
// certificate for client authentication that chains to the CA in dir
// (ca.pem) and is not revoked (dir's revoked.txt, read again on a
// handshake when it has changed). Only ca.pem, NAME.pem and NAME-key.pem
// need be in dir. NAME's own certificate must not be revoked.
func ServerConfig(dir, name string) (*tls.Config, error) {
	pool, cert, rev, err := load(dir, name)
	if err != nil {
		return nil, fmt.Errorf("pki server config: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		// crypto/tls has verified the chain when it calls this.
		VerifyConnection: rev.checkPeer,
	}, nil
}

// ClientConfig returns the TLS configuration for connecting to a dock:
// TLS 1.3 only, presenting NAME's certificate, and accepting only a server
// whose certificate chains to the CA in dir (ca.pem), is valid for server
// authentication and for the host the connection was made to (an IP
// address or DNS name that `pki issue --host` put in it), and is not
// revoked (dir's revoked.txt, as for ServerConfig). NAME's own certificate
// must not be revoked.
//
// crypto/tls checks the chain and the host, against ServerName, which the
// configuration leaves empty: dock.NewClient sets it to the host of the
// dock's address, as tls.Dial does, and a connection without one fails.
// Checking the host is what keeps one node from posing as another's dock:
// every node's certificate is signed by the same CA, and the client must
// know it reached the host its user named.
func ClientConfig(dir, name string) (*tls.Config, error) {
	pool, cert, rev, err := load(dir, name)
	if err != nil {
		return nil, fmt.Errorf("pki client config: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		// crypto/tls has verified the chain and the host when it calls
		// this.
		VerifyConnection: rev.checkPeer,
	}, nil
}

// load reads the CA certificate in dir as a pool of one root, NAME's
// certificate and key, and dir's revoked certificates; NAME's must not be
// one of them.
func load(dir, name string) (*x509.CertPool, tls.Certificate, *revocations, error) {
	if err := ValidateName(name); err != nil {
		return nil, tls.Certificate{}, nil, err
	}
	caCert, err := readCert(filepath.Join(dir, CACert), "podctl pki init "+dir)
	if err != nil {
		return nil, tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	hint := "podctl pki issue " + dir + " " + name
	certPath, keyPath := filepath.Join(dir, CertFile(name)), filepath.Join(dir, KeyFile(name))
	certPEM, err := readFile(certPath, hint)
	if err != nil {
		return nil, tls.Certificate{}, nil, err
	}
	keyPEM, err := readFile(keyPath, hint)
	if err != nil {
		return nil, tls.Certificate{}, nil, err
	}
	// X509KeyPair also checks that the key matches the certificate.
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, tls.Certificate{}, nil, errdefs.New(errdefs.InvalidArgument, "%s, %s: %w", certPath, keyPath, err)
	}
	leaf := cert.Leaf
	if leaf == nil { // GODEBUG=x509keypairleaf=0
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, tls.Certificate{}, nil, errdefs.New(errdefs.InvalidArgument, "%s: %w", certPath, err)
		}
	}
	rev := newRevocations(dir)
	if err := rev.check(leaf); err != nil {
		var revoked *RevokedError
		if errors.As(err, &revoked) {
			return nil, tls.Certificate{}, nil, errdefs.New(errdefs.Unsupported, "%s: %w (%s): issue a new one with `%s`", certPath, err, rev.path, hint)
		}
		return nil, tls.Certificate{}, nil, err
	}
	return pool, cert, rev, nil
}
