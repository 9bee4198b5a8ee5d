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
// whose certificate, valid for server authentication, chains to the CA in
// dir (ca.pem) and is not revoked (dir's revoked.txt, as for
// ServerConfig). NAME's own certificate must not be revoked.
//
// The server's certificate is not checked against the address dialled.
// Docks are addressed by IP and port, addresses change as hosts are added
// and moved (and tests use many), and no name in a dock's certificate
// means anything that possession of it does not already prove: in a podctl
// cluster the authorization is holding a key that the cluster's CA signed,
// and every such holder is a podctl host trusted to send and receive pods.
// So the configuration sets InsecureSkipVerify, which turns off Go's
// default verification (chain and name together), and does the chain half
// itself in VerifyConnection, which crypto/tls calls during every handshake
// whatever InsecureSkipVerify says. A server without a CA-signed
// certificate still fails the handshake, before the client has sent its
// own certificate. Do not give certificates from this CA to anything that
// is not a podctl host.
func ClientConfig(dir, name string) (*tls.Config, error) {
	pool, cert, rev, err := load(dir, name)
	if err != nil {
		return nil, fmt.Errorf("pki client config: %w", err)
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{cert},
		RootCAs:            pool,
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := verifyServer(pool, cs); err != nil {
				return err
			}
			return rev.checkPeer(cs)
		},
	}, nil
}

// verifyServer checks that the server's certificate chain leads to a root
// in pool and is valid for server authentication, ignoring its names.
func verifyServer(pool *x509.CertPool, cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("dock presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("dock certificate: %w", err)
	}
	return nil
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
