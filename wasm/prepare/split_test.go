package prepare

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/podctl/podctl/wasm/internal/wasmcode"
)

// asyncifyForSplit instruments module and runs Asyncify on it, stopping
// where splitRewind starts.
func asyncifyForSplit(t *testing.T, module []byte) []byte {
	t.Helper()
	instrumented, err := Instrument(module)
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, instrumented)
	feats, err := moduleFeatures(instrumented, m)
	if err != nil {
		t.Fatal(err)
	}
	out, err := asyncifyOnly(context.Background(), wasmOptPath(t), t.TempDir(), instrumented, feats)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSplitRewind checks the shape of a split module: every instrumented
// function keeps its index with a body whose only reads of Asyncify's
// state are checks for unwinding, gets a twin after the other functions,
// the twins' table mirrors the module's with the twins in place of the
// originals, and RewindExport names the entry point's twin.
func TestSplitRewind(t *testing.T) {
	// qsort and a table of operations: calls through function pointers.
	asyncified := asyncifyForSplit(t, buildC(t, "guest", "-O2"))
	split, err := splitRewind(asyncified)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, split)

	s, _, err := newSplitter(asyncified)
	if err != nil {
		t.Fatal(err)
	}
	before, after := s.m, decode(t, split)
	twins := 0
	for _, tw := range s.twin {
		if tw != 0 {
			twins++
		}
	}
	if twins == 0 || !s.indirect {
		t.Fatalf("%d instrumented functions, indirect calls %v: the guest proves little", twins, s.indirect)
	}
	if got, want := len(after.FunctionSection), len(before.FunctionSection)+twins; got != want {
		t.Fatalf("%d functions after the split, want %d", got, want)
	}

	for i, tw := range s.twin {
		if tw == 0 {
			if string(after.CodeSection[i].Body) != string(before.CodeSection[i].Body) {
				t.Errorf("function %d, not instrumented, changed", s.funcImports+uint32(i))
			}
			continue
		}
		insts, err := wasmcode.DecodeBody(after.CodeSection[i].Body)
		if err != nil {
			t.Fatal(err)
		}
		for j, in := range insts {
			if in.Opcode == wasmcode.OpGlobalGet && in.Imm[0].Index() == s.state &&
				!(insts[j+1].Opcode == wasmcode.OpI32Const && insts[j+1].Imm[0].Signed() == 1 && insts[j+2].Opcode == wasmcode.OpI32Eq) {
				t.Fatalf("function %d still reads the state other than to check for unwinding", s.funcImports+uint32(i))
			}
		}
		twin := after.CodeSection[tw-s.funcImports]
		if len(twin.LocalTypes) < len(before.CodeSection[i].LocalTypes) {
			t.Fatalf("twin %d has fewer locals than function %d", tw, s.funcImports+uint32(i))
		}
	}

	if len(after.TableSection) != 2 || after.TableSection[1].Min != before.TableSection[0].Min {
		t.Fatalf("tables %+v, want a copy of %+v", after.TableSection, before.TableSection)
	}
	n := len(before.ElementSection)
	if len(after.ElementSection) != 2*n {
		t.Fatalf("%d element segments, want %d", len(after.ElementSection), 2*n)
	}
	for k, e := range before.ElementSection {
		c := after.ElementSection[n+k]
		if c.TableIndex != 1 || string(c.OffsetExpr.Data) != string(e.OffsetExpr.Data) || len(c.Init) != len(e.Init) {
			t.Fatalf("element segment %d is not mirrored on table 1", k)
		}
		for j, f := range e.Init {
			if *c.Init[j] != s.rewinding(*f) {
				t.Fatalf("table 1, segment %d, element %d: function %d, want %d", k, j, *c.Init[j], s.rewinding(*f))
			}
		}
	}

	var rewind, entry uint32
	for _, e := range after.ExportSection {
		switch e.Name {
		case RewindExport:
			rewind = e.Index
		case "_start":
			entry = e.Index
		}
	}
	if rewind == 0 || rewind != s.rewinding(entry) || rewind == entry {
		t.Fatalf("%s exports function %d; the entry point is %d and its twin %d", RewindExport, rewind, entry, s.rewinding(entry))
	}
	names := make(map[uint32]string)
	for _, n := range after.NameSection.FunctionNames {
		names[n.Index] = n.Name
	}
	if names[entry] == "" || names[rewind] != names[entry]+" (rewind)" {
		t.Errorf("the entry point is named %q and its twin %q", names[entry], names[rewind])
	}
}

// TestSplitRefused checks that a module splitRewind cannot split (its
// table is exported, so the host could change it) is left to Asyncify's
// own code, which still stops and moves correctly.
func TestSplitRefused(t *testing.T) {
	original := buildC(t, "guest", "-O2", "-Wl,--export-table")
	if _, err := splitRewind(asyncifyForSplit(t, original)); !errors.Is(err, errNoSplit) {
		t.Fatalf("split of a module with an exported table: %v, want errNoSplit", err)
	}
	checkMigration(t, original, 40*time.Millisecond, "all", "1")
}
