//go:build linux && cgo

package housed

import (
	"reflect"
	"testing"

	"github.com/podctl/podctl/pod"
	"github.com/podctl/podctl/pod/handle"
	"github.com/podctl/podctl/pod/vesselpod"
	"github.com/podctl/podctl/virtns"
)

// TestHouseSpec checks the spec of a pod housing a vessel: its payload
// is the supervisor, told it is housed, started or resumed from the
// snapshot given; the vessel's name and arguments are recorded for ps;
// and the engine choice of the podctl that made it is passed on.
func TestHouseSpec(t *testing.T) {
	t.Setenv(vesselpod.EngineEnv, "")
	supervisor := []string{virtns.PodctlPath, vesselpod.SupervisorArg, Root, "v"}
	for _, tc := range []struct {
		name, resume, engine string
		command, env         []string
	}{
		{"fresh", "", "", supervisor, []string{vesselpod.HousedEnv + "=1"}},
		{"resumed", "in.snap", "", append(supervisor[:len(supervisor):len(supervisor)], "in.snap"), []string{vesselpod.HousedEnv + "=1"}},
		{"interpreter", "", "interpreter", supervisor, []string{vesselpod.HousedEnv + "=1", vesselpod.EngineEnv + "=interpreter"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(vesselpod.EngineEnv, tc.engine)
			got := houseSpec("v", []string{"a", "b"}, tc.resume)
			want := pod.Spec{
				Name: "v", Image: pod.ImageHost, Command: tc.command, Env: tc.env,
				Vessel: &pod.VesselRef{Name: "v", Args: []string{"a", "b"}},
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("houseSpec:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// The three kinds of pod are handles.
var (
	_ handle.Pod = (*pod.NativeHandle)(nil)
	_ handle.Pod = (*vesselpod.Handle)(nil)
	_ handle.Pod = (*Handle)(nil)
)
