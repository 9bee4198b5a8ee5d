package prepare

import (
	"bytes"
	"context"
	"testing"

	"github.com/tetratelabs/wabin/wasm"
	"github.com/tetratelabs/wazero"
)

// TestStripRewind checks a start module: each function keeps the
// prepared module's body byte for byte or has a stub that traps, the
// twins (RewindExport's among them) are stubs, and a fresh run of it
// prints what the prepared module prints. TestMigrateC and TestMigrateGo
// run their first leg in the start module and resume it in the prepared
// one.
func TestStripRewind(t *testing.T) {
	prepared := prepareModule(t, buildC(t, "guest", "-O2"))
	start, err := stripRewind(prepared)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, start)
	full, stripped := decode(t, prepared), decode(t, start)
	if len(stripped.CodeSection) != len(full.CodeSection) {
		t.Fatalf("%d functions in the start module, %d in the prepared one", len(stripped.CodeSection), len(full.CodeSection))
	}
	imports := uint32(0)
	for _, imp := range full.ImportSection {
		if imp.Type == wasm.ExternTypeFunc {
			imports++
		}
	}
	stub := stubBody.body
	kept, stubbed := 0, 0
	isStub := make(map[uint32]bool)
	for i, c := range stripped.CodeSection {
		switch {
		case bytes.Equal(c.Body, full.CodeSection[i].Body) && len(c.LocalTypes) == len(full.CodeSection[i].LocalTypes):
			kept++
		case bytes.Equal(c.Body, stub) && len(c.LocalTypes) == 0:
			stubbed++
			isStub[imports+uint32(i)] = true
		default:
			t.Fatalf("function %d is neither the prepared module's nor a stub", imports+uint32(i))
		}
	}
	for _, n := range full.NameSection.FunctionNames {
		if bytes.HasSuffix([]byte(n.Name), []byte(" (rewind)")) != isStub[n.Index] {
			t.Errorf("function %d, %q: stubbed %v", n.Index, n.Name, isStub[n.Index])
		}
	}
	for _, e := range full.ExportSection {
		if e.Name == RewindExport && !isStub[e.Index] {
			t.Errorf("%s (function %d) is not a stub", RewindExport, e.Index)
		}
	}
	t.Logf("%d functions kept, %d stubbed; %d bytes, prepared %d", kept, stubbed, len(start), len(prepared))

	ctx := context.Background()
	cache := wazero.NewCompilationCache()
	t.Cleanup(func() { cache.Close(ctx) })
	want, _ := runOnce(ctx, t, cache, prepared, "all", "1")
	got, _ := runOnce(ctx, t, cache, start, "all", "1")
	if got != want {
		t.Fatalf("the start module printed %q (exit %d), the prepared module %q (exit %d)",
			firstLines(got.stdout, 5), got.exitCode, firstLines(want.stdout, 5), want.exitCode)
	}
	h := newHost(ctx, t, runtimeConfig(cache), start)
	if _, err := h.call(ctx, RewindExport); err == nil {
		t.Fatalf("%s of the start module ran", RewindExport)
	}
}
