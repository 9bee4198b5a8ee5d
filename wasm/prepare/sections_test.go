package prepare

import (
	"reflect"
	"testing"
)

// TestDecodeDeclarations checks that the declarations of a prepared Go
// module decode as a whole decode gives them.
func TestDecodeDeclarations(t *testing.T) {
	prepared := prepareModule(t, buildGo(t))
	whole := decode(t, prepared)
	m, err := DecodeDeclarations(prepared)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.CodeSection) != 0 || len(m.FunctionSection) != 0 {
		t.Error("the code was decoded too")
	}
	if !reflect.DeepEqual(m.TypeSection, whole.TypeSection) || !reflect.DeepEqual(m.ImportSection, whole.ImportSection) ||
		!reflect.DeepEqual(m.GlobalSection, whole.GlobalSection) || !reflect.DeepEqual(m.ExportSection, whole.ExportSection) {
		t.Error("the declarations differ from a whole decode's")
	}
	if _, err := DecodeDeclarations(prepared[:len(prepared)/2]); err == nil {
		t.Error("half a module decoded")
	}
}
