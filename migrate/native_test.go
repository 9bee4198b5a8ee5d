//go:build linux && cgo

package migrate

import (
	"runtime"
	"strings"
	"testing"

	"github.com/podctl/podctl/dock"
	"github.com/podctl/podctl/internal/cpufeat"
	"github.com/podctl/podctl/internal/errdefs"
)

func TestCheckDock(t *testing.T) {
	// A fixed host, so that every case runs on any CPU.
	ours := cpufeat.New("avx", "avx2", "sse2")
	host := func() (cpufeat.Features, error) { return ours, nil }
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	for _, tc := range []struct {
		name  string
		hello dock.Hello
		o     Options
		want  string // "" for accepted
	}{
		{"same ISA", dock.Hello{ISA: runtime.GOARCH, OS: "linux", Capabilities: []string{"criu", "criu-lazy"}, CPUFeatures: ours}, Options{}, ""},
		{"other ISA", dock.Hello{ISA: other, OS: "linux", Capabilities: []string{"criu"}, CPUFeatures: ours}, Options{}, "only a Wasm vessel pod can change ISA"},
		{"no CRIU", dock.Hello{ISA: runtime.GOARCH, OS: "linux", CPUFeatures: ours}, Options{}, "cannot restore CRIU images"},
		{"no lazy", dock.Hello{ISA: runtime.GOARCH, OS: "linux", Capabilities: []string{"criu"}, CPUFeatures: ours}, Options{Live: true}, "lazily"},
		{"missing CPU feature", dock.Hello{ISA: runtime.GOARCH, OS: "linux", Capabilities: []string{"criu"}}, Options{}, "lacks features"},
		{"missing CPU feature, forced", dock.Hello{ISA: runtime.GOARCH, OS: "linux", Capabilities: []string{"criu"}}, Options{Force: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkDock(&tc.hello, tc.o, host)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || errdefs.KindOf(err) != errdefs.Unsupported {
				t.Fatalf("got %v (kind %d), want an Unsupported error containing %q", err, errdefs.KindOf(err), tc.want)
			}
		})
	}
}
