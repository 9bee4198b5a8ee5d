package migrate

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/pod/handle"
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
		kind    handle.Kind
		via     string
		dockISA string // "" if the dock must not be asked
		want    Route
		err     errdefs.Kind // 0: no error
	}{
		{handle.Native, ViaAuto, "", RouteCRIU, 0},
		{handle.Native, ViaCRIU, "", RouteCRIU, 0},
		{handle.Native, ViaWasm, "", 0, errdefs.Unsupported},
		{handle.Vessel, ViaAuto, "", RouteSnapshot, 0},
		{handle.Vessel, ViaWasm, "", RouteSnapshot, 0},
		{handle.Vessel, ViaCRIU, "", 0, errdefs.Unsupported},
		{handle.Housed, ViaWasm, "", RouteSnapshot, 0},
		{handle.Housed, ViaAuto, runtime.GOARCH, RouteCRIU, 0},
		{handle.Housed, ViaAuto, otherISA(), RouteSnapshot, 0},
		{handle.Housed, ViaCRIU, runtime.GOARCH, RouteCRIU, 0},
		{handle.Housed, ViaCRIU, otherISA(), 0, errdefs.Unsupported},
		{handle.Native, "tcp", "", 0, errdefs.InvalidArgument},
		{handle.Housed, "", "", 0, errdefs.InvalidArgument},
	} {
		asked := false
		dockISA := func(context.Context) (string, error) {
			asked = true
			return tc.dockISA, nil
		}
		got, err := ChooseRoute(context.Background(), "p", tc.kind, tc.via, dockISA)
		if asked != (tc.dockISA != "") {
			t.Errorf("kind %s via %q: dock asked %v, want %v", tc.kind, tc.via, asked, !asked)
		}
		if tc.err != 0 {
			if errdefs.KindOf(err) != tc.err {
				t.Errorf("kind %s via %q to %s: %v, want an error of class %v", tc.kind, tc.via, tc.dockISA, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("kind %s via %q to %s: %v, %v; want %v", tc.kind, tc.via, tc.dockISA, got, err, tc.want)
		}
	}
}

func TestChooseRouteDockError(t *testing.T) {
	down := errors.New("dock down")
	_, err := ChooseRoute(context.Background(), "p", handle.Housed, ViaAuto, func(context.Context) (string, error) { return "", down })
	if !errors.Is(err, down) {
		t.Fatalf("got %v, want the dock's error", err)
	}
}

func TestOptionsCheck(t *testing.T) {
	for _, tc := range []struct {
		kind  handle.Kind
		route Route
		o     Options
		ok    bool
	}{
		{handle.Native, RouteCRIU, Options{Name: "n", Live: true, Force: true}, true},
		{handle.Housed, RouteCRIU, Options{Live: true}, true},
		{handle.Housed, RouteSnapshot, Options{Name: "n"}, true},
		{handle.Housed, RouteSnapshot, Options{Live: true}, false},
		{handle.Housed, RouteSnapshot, Options{Force: true}, false},
		{handle.Vessel, RouteSnapshot, Options{}, true},
		{handle.Vessel, RouteSnapshot, Options{Name: "n"}, false},
		{handle.Vessel, RouteSnapshot, Options{Live: true}, false},
	} {
		err := tc.o.Check(tc.kind, tc.route)
		if (err == nil) != tc.ok {
			t.Errorf("kind %s route %v %+v: %v, want ok %v", tc.kind, tc.route, tc.o, err, tc.ok)
		}
		if err != nil && errdefs.KindOf(err) != errdefs.Usage {
			t.Errorf("kind %s route %v %+v: %v is not a usage error", tc.kind, tc.route, tc.o, err)
		}
	}
}
