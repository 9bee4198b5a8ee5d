package compare

import (
	"bytes"
	"strings"
	"testing"

	"github.com/podctl/podctl/test/harness"
)

// TestChart draws a chart and checks that it is well-formed XML whose
// text names every workload and every path (the legend).
func TestChart(t *testing.T) {
	var runs []Run
	for i, v := range []float64{1, 2, 3} {
		runs = append(runs,
			Run{Workload: "nbody", Path: "raw-criu", Index: i, Metrics: map[string]float64{"image-bytes": 1000 * v}},
			Run{Workload: "nbody", Path: "snapshot", Index: i, Metrics: map[string]float64{"image-bytes": 2 * v}},
			Run{Workload: "kv", Path: "raw-criu", Index: i, Metrics: map[string]float64{"image-bytes": 3e8 * v}},
		)
	}
	var buf bytes.Buffer
	if err := WriteChart(&buf, runs, "image-bytes", "Image size"); err != nil {
		t.Fatal(err)
	}
	root, text, err := harness.XMLText(buf.Bytes())
	if err != nil {
		t.Fatalf("the SVG: %v", err)
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	for _, want := range []string{"Image size", "nbody", "kv", "raw-criu", "snapshot"} {
		if !strings.Contains(text, want) {
			t.Errorf("the chart does not say %q", want)
		}
	}
}
