//go:build unix

package wasi

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestStateRefusesFIFO(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Preopens: []PreopenDir{{"/", dir}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.State(); !errors.Is(err, ErrNotMovable) || !strings.Contains(err.Error(), "fifo") {
		t.Errorf("State with a FIFO: %v", err)
	} else {
		t.Log(err)
	}
}
