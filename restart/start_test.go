package restart

import (
	"runtime"
	"strings"
	"testing"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/internal/cpufeat"
	"github.com/podctl/podctl/internal/errdefs"
)

// TestCheckRestorableNeedsCPUFeatures checks that an archive which does
// not list its source's CPU features (on an ISA whose features can be
// compared) is refused unless forced: before, it passed every check.
func TestCheckRestorableNeedsCPUFeatures(t *testing.T) {
	if !cpufeat.Known(runtime.GOARCH) {
		// Nothing to compare: such archives list none.
		am := &checkpoint.Manifest{Source: checkpoint.Source{ISA: runtime.GOARCH}, Images: checkpoint.Images{Kind: checkpoint.ImagesCRIU}}
		if err := CheckRestorable(am, false); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := cpufeat.Host()
	if err != nil {
		t.Fatal(err)
	}
	am := &checkpoint.Manifest{Source: checkpoint.Source{ISA: runtime.GOARCH, CPUFeatures: have}, Images: checkpoint.Images{Kind: checkpoint.ImagesCRIU}}
	if err := CheckRestorable(am, false); err != nil {
		t.Fatalf("this host's own features: %v", err)
	}
	am.Source.CPUFeatures = nil
	err = CheckRestorable(am, false)
	if errdefs.KindOf(err) != errdefs.Unsupported || !strings.Contains(err.Error(), "does not list the CPU features") {
		t.Fatalf("no features listed: %v, want an Unsupported error saying so", err)
	}
	if err := CheckRestorable(am, true); err != nil {
		t.Fatalf("forced: %v", err)
	}
}
