package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/statedir"
)

// createFile writes data to path, which must not exist, atomically: to a
// temporary file in the same directory, synced, then linked into place
// (link(2), unlike rename(2), fails if path exists). If path exists it is
// kept and an errdefs.AlreadyExists error returned.
func createFile(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return errdefs.New(errdefs.AlreadyExists, "%s already exists", path)
		}
		return fmt.Errorf("write %s: %w", path, err)
	}
	return statedir.SyncDir(dir)
}

// readFile reads path. A missing file is an errdefs.NotFound error whose
// message ends with hint, the command that creates the file.
func readFile(path, hint string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errdefs.New(errdefs.NotFound, "%s not found: run `%s`", path, hint)
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// readPEM reads path and returns the DER bytes of its first PEM block of
// type typ. A missing file is an errdefs.NotFound error (see readFile).
func readPEM(path, typ, hint string) ([]byte, error) {
	data, err := readFile(path, hint)
	if err != nil {
		return nil, err
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errdefs.New(errdefs.InvalidArgument, "%s: no PEM block of type %q", path, typ)
		}
		if b.Type == typ {
			return b.Bytes, nil
		}
	}
}

// readCert reads the certificate in path.
func readCert(path, hint string) (*x509.Certificate, error) {
	der, err := readPEM(path, "CERTIFICATE", hint)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, errdefs.New(errdefs.InvalidArgument, "%s: %w", path, err)
	}
	return c, nil
}

// readKey reads the PKCS #8 private key in path.
func readKey(path, hint string) (crypto.Signer, error) {
	der, err := readPEM(path, "PRIVATE KEY", hint)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errdefs.New(errdefs.InvalidArgument, "%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errdefs.New(errdefs.InvalidArgument, "%s: unsupported key type %T", path, k)
	}
	return s, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
