package pod

import (
	"context"
	"os"
	"testing"

	"github.com/podctl/podctl/internal/statedir"
)

// TestRecoverReleasesStaleLeases leaves leases as a podctl that died
// between taking them and recording its pod does: recovery releases the
// ones whose pod does not exist, and keeps the others.
func TestRecoverReleasesStaleLeases(t *testing.T) {
	m, err := NewManager(Options{Root: t.TempDir(), InitBinary: "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	const kept, gone = "0123456789abcdef", "fedcba9876543210"
	if err := os.MkdirAll(m.store.podDir("kept"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := m.store.save(&Manifest{Version: ManifestVersion, ID: kept, Spec: Spec{Name: "kept"}, State: StateCreated}); err != nil {
		t.Fatal(err)
	}
	ips, ports := m.store.ipLeases("default"), m.store.portLeases()
	never := func(string) bool { return false }
	for _, l := range []struct {
		leases     statedir.Leases
		key, owner string
	}{{ips, "10.88.0.2", kept}, {ips, "10.88.0.3", gone}, {ports, "8080-tcp", gone}} {
		if ok, _, err := l.leases.Take(l.key, l.owner, never); !ok || err != nil {
			t.Fatalf("take %s: %v, %v", l.key, ok, err)
		}
	}
	if err := m.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct {
		leases     statedir.Leases
		key, owner string
	}{{ips, "10.88.0.2", kept}, {ips, "10.88.0.3", ""}, {ports, "8080-tcp", ""}} {
		if owner, err := l.leases.Owner(l.key); owner != l.owner || err != nil {
			t.Errorf("lease %s: owner %q (%v), want %q", l.key, owner, err, l.owner)
		}
	}
}
