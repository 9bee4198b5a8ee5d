package migrate

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/podctl/podctl/internal/errdefs"
)

// otherISA is an ISA that is not this host's.
func otherISA() string {
	if runtime.GOARCH == "s390x" {
		return "arm64"
	}
	return "s390x"
}

func TestChooseRoute(t *testing.T) {
	for _, tc := range []struct {
		kind    Kind
		via     string
		dockISA string // "" if the dock must not be asked
		want    Route
		err     errdefs.Kind // 0: no error
	}{
		{Native, ViaAuto, "", RouteCRIU, 0},
		{Native, ViaCRIU, "", RouteCRIU, 0},
		{Native, ViaWasm, "", 0, errdefs.Unsupported},
		{Vessel, ViaAuto, "", RouteSnapshot, 0},
		{Vessel, ViaWasm, "", RouteSnapshot, 0},
		{Vessel, ViaCRIU, "", 0, errdefs.Unsupported},
		{Housed, ViaWasm, "", RouteSnapshot, 0},
		{Housed, ViaAuto, runtime.GOARCH, RouteCRIU, 0},
		{Housed, ViaAuto, otherISA(), RouteSnapshot, 0},
		{Housed, ViaCRIU, runtime.GOARCH, RouteCRIU, 0},
		{Housed, ViaCRIU, otherISA(), 0, errdefs.Unsupported},
		{Native, "tcp", "", 0, errdefs.InvalidArgument},
		{Housed, "", "", 0, errdefs.InvalidArgument},
	} {
		asked := false
		dockISA := func(context.Context) (string, error) {
			asked = true
			return tc.dockISA, nil
		}
		got, err := ChooseRoute(context.Background(), "p", tc.kind, tc.via, dockISA)
		if asked != (tc.dockISA != "") {
			t.Errorf("kind %d via %q: dock asked %v, want %v", tc.kind, tc.via, asked, !asked)
		}
		if tc.err != 0 {
			if errdefs.KindOf(err) != tc.err {
				t.Errorf("kind %d via %q to %s: %v, want an error of class %v", tc.kind, tc.via, tc.dockISA, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("kind %d via %q to %s: %v, %v; want %v", tc.kind, tc.via, tc.dockISA, got, err, tc.want)
		}
	}
}

func TestChooseRouteDockError(t *testing.T) {
	down := errors.New("dock down")
	_, err := ChooseRoute(context.Background(), "p", Housed, ViaAuto, func(context.Context) (string, error) { return "", down })
	if !errors.Is(err, down) {
		t.Fatalf("got %v, want the dock's error", err)
	}
}

func TestOptionsCheck(t *testing.T) {
	for _, tc := range []struct {
		kind  Kind
		route Route
		o     Options
		ok    bool
	}{
		{Native, RouteCRIU, Options{Name: "n", Live: true, Force: true}, true},
		{Housed, RouteCRIU, Options{Live: true}, true},
		{Housed, RouteSnapshot, Options{Name: "n"}, true},
		{Housed, RouteSnapshot, Options{Live: true}, false},
		{Housed, RouteSnapshot, Options{Force: true}, false},
		{Vessel, RouteSnapshot, Options{}, true},
		{Vessel, RouteSnapshot, Options{Name: "n"}, false},
		{Vessel, RouteSnapshot, Options{Live: true}, false},
	} {
		err := tc.o.Check(tc.kind, tc.route)
		if (err == nil) != tc.ok {
			t.Errorf("kind %d route %v %+v: %v, want ok %v", tc.kind, tc.route, tc.o, err, tc.ok)
		}
		if err != nil && errdefs.KindOf(err) != errdefs.Usage {
			t.Errorf("kind %d route %v %+v: %v is not a usage error", tc.kind, tc.route, tc.o, err)
		}
	}
}
