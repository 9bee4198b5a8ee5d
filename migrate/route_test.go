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
		{KindNative, ViaAuto, "", RouteCRIU, 0},
		{KindNative, ViaCRIU, "", RouteCRIU, 0},
		{KindNative, ViaWasm, "", 0, errdefs.Unsupported},
		{KindVessel, ViaAuto, "", RouteSnapshot, 0},
		{KindVessel, ViaWasm, "", RouteSnapshot, 0},
		{KindVessel, ViaCRIU, "", 0, errdefs.Unsupported},
		{KindHoused, ViaWasm, "", RouteSnapshot, 0},
		{KindHoused, ViaAuto, runtime.GOARCH, RouteCRIU, 0},
		{KindHoused, ViaAuto, otherISA(), RouteSnapshot, 0},
		{KindHoused, ViaCRIU, runtime.GOARCH, RouteCRIU, 0},
		{KindHoused, ViaCRIU, otherISA(), 0, errdefs.Unsupported},
		{KindNative, "tcp", "", 0, errdefs.InvalidArgument},
		{KindHoused, "", "", 0, errdefs.InvalidArgument},
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
	_, err := ChooseRoute(context.Background(), "p", KindHoused, ViaAuto, func(context.Context) (string, error) { return "", down })
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
		{KindNative, RouteCRIU, Options{Name: "n", Live: true, Force: true}, true},
		{KindHoused, RouteCRIU, Options{Live: true}, true},
		{KindHoused, RouteSnapshot, Options{Name: "n"}, true},
		{KindHoused, RouteSnapshot, Options{Live: true}, false},
		{KindHoused, RouteSnapshot, Options{Force: true}, false},
		{KindVessel, RouteSnapshot, Options{}, true},
		{KindVessel, RouteSnapshot, Options{Name: "n"}, false},
		{KindVessel, RouteSnapshot, Options{Live: true}, false},
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
