package migrate

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/podctl/podctl/internal/budget"
	"github.com/podctl/podctl/pod/vesselpod"
)

// TestDestinationRecoversInOrder checks that a dock recovers its stores
// in order, stops at the first that fails without serving, and lets its
// port go.
func TestDestinationRecoversInOrder(t *testing.T) {
	var ran []string
	step := func(what string, err error) recoveryStep {
		return recoveryStep{what, func(context.Context) error { ran = append(ran, what); return err }}
	}
	d := &Destination{Vessels: PlainVessels{}, recovery: []recoveryStep{
		step("first", nil), step("second", errors.New("disk on fire")), step("third", nil),
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = d.Serve(context.Background(), ln, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "recover second: disk on fire") {
		t.Fatalf("Serve: %v", err)
	}
	if strings.Join(ran, ",") != "first,second" {
		t.Fatalf("recovery ran %v, want first then second and nothing after the failure", ran)
	}
	// The port is free again: a dock restarted after fixing the disk can
	// take it.
	again, err := net.Listen("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("the failed dock kept its port: %v", err)
	}
	again.Close()
}

func TestVesselDestination(t *testing.T) {
	d := VesselDestination(vesselStoreForTest(t))
	if d.Pods != nil {
		t.Fatal("a vessel-only dock receives native pods")
	}
	if got := recoveryOrder(d); got != "vessel pods" {
		t.Fatalf("recovery order %q", got)
	}
}

func recoveryOrder(d *Destination) string {
	var s []string
	for _, r := range d.recovery {
		s = append(s, r.what)
	}
	return strings.Join(s, ", ")
}

func vesselStoreForTest(t *testing.T) vesselpod.Store { return vesselpod.Store{Root: t.TempDir()} }

// TestDestinationBudgets checks how a dock's budgets are assembled: the
// memory budget as given, the disk budget split between staging and the
// module cache's quarter, and the machine's defaults when none is given.
func TestDestinationBudgets(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := VesselDestination(vesselStoreForTest(t))
	d.Budgets = Budgets{Memory: 300 << 20, Disk: 1 << 30}
	s, b := d.server(nil, log)
	recv := s.Vessels.(VesselReceiver)
	if s.Memory.Size() != 300<<20 || s.Disk.Size() != 768<<20 || recv.Modules == nil || recv.Modules.Max() != 256<<20 || b != d.Budgets {
		t.Fatalf("memory %d, staging %d, module cache %v, budgets %+v", s.Memory.Size(), s.Disk.Size(), recv.Modules, b)
	}
	d.Budgets = Budgets{}
	s, b = d.server(nil, log)
	if b.Memory != budget.DefaultMemory() || b.Memory < budget.MinMemory || b.Disk < budget.MinDisk || s.Disk.Size() != b.Disk-b.Disk/ModuleCacheShare {
		t.Fatalf("default budgets %+v, staging %d", b, s.Disk.Size())
	}
}
