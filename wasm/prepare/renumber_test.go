package prepare

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	wabinary "github.com/tetratelabs/wabin/binary"
	"github.com/tetratelabs/wabin/wasm"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/podctl/podctl/wasm/internal/wasmcode"
)

// watRuntime returns a runtime for the handwritten test modules, which
// use tail calls, with the poll function, and the module of env.wat
// instantiated as "env". Calls end when their context does, so that a
// mistranslated branch that loops forever fails the test (see callCtx).
func watRuntime(ctx context.Context, t *testing.T, onPoll func()) wazero.Runtime {
	t.Helper()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCoreFeatures(api.CoreFeaturesV2|experimental.CoreFeaturesTailCall).
		WithCloseOnContextDone(true))
	t.Cleanup(func() { rt.Close(context.Background()) })
	_, err := rt.NewHostModuleBuilder(PollModule).
		NewFunctionBuilder().WithFunc(func() {
		if onPoll != nil {
			onPoll()
		}
	}).Export(PollFunc).
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.InstantiateWithConfig(ctx, buildWat(t, "env"), wazero.NewModuleConfig().WithName("env")); err != nil {
		t.Fatal(err)
	}
	return rt
}

// callExport instantiates a module in a fresh runtime and calls one of
// its exports.
func callExport(ctx context.Context, t *testing.T, module []byte, name string, params ...uint64) uint64 {
	t.Helper()
	rt := watRuntime(ctx, t, nil)
	mod, err := rt.Instantiate(ctx, module)
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	ctx, cancel := callCtx(ctx)
	defer cancel()
	res, err := mod.ExportedFunction(name).Call(ctx, params...)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res[0]
}

// callCtx bounds a call of a handwritten test module, which takes
// microseconds unless its instrumentation is wrong.
func callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 10*time.Second)
}

// decode decodes a module with wabin.
func decode(t *testing.T, module []byte) *wasm.Module {
	t.Helper()
	m, err := wabinary.DecodeModule(module, decodeFeatures)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return m
}

// TestInstrumentRenumbers checks that every function index of a module
// that uses them in every way the binary format allows still names the
// same function after the poll import shifts them by one.
func TestInstrumentRenumbers(t *testing.T) {
	ctx := context.Background()
	original := buildWat(t, "renumber")
	instrumented, err := Instrument(original)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, instrumented)

	// $base (5), $f1 to $f9 (1, 20, ..., 900000000, each in its own
	// digit), the host (10000000), and the tail calls ($f1 and $f2
	// again): a wrong function changes a digit.
	want := callExport(ctx, t, original, "run")
	if want != 997654347 {
		t.Fatalf("the original module returns %d: the test module is wrong", want)
	}
	if got := callExport(ctx, t, instrumented, "run"); got != want {
		t.Fatalf("instrumented module returns %d, want %d", got, want)
	}

	om, im := decode(t, original), decode(t, instrumented)
	// The poll function is the second import, after env.host.
	if imp := im.ImportSection[len(im.ImportSection)-1]; imp.Module != PollModule || imp.Name != PollFunc || imp.Type != wasm.ExternTypeFunc {
		t.Fatalf("last import is %s.%s, want %s.%s", imp.Module, imp.Name, PollModule, PollFunc)
	}
	if *im.StartSection != *om.StartSection+1 {
		t.Errorf("start function %d, want %d", *im.StartSection, *om.StartSection+1)
	}

	exports := make(map[string]*wasm.Export)
	for _, e := range im.ExportSection {
		exports[e.Name] = e
	}
	for _, e := range om.ExportSection {
		want := e.Index
		if e.Type == wasm.ExternTypeFunc {
			want++
		}
		if got := exports[e.Name]; got == nil || got.Index != want || got.Type != e.Type {
			t.Errorf("export %q: got %+v, want index %d", e.Name, got, want)
		}
	}
	// Globals: 0 is the imported $base, 1 $counter (mutable), 2 $fref
	// (immutable), 3 $wide (mutable); the flag is appended as 4.
	for name, index := range map[string]uint32{
		FlagExport:               4,
		GlobalExportPrefix + "1": 1,
		GlobalExportPrefix + "3": 3,
	} {
		if e := exports[name]; e == nil || e.Type != wasm.ExternTypeGlobal || e.Index != index {
			t.Errorf("export %q: got %+v, want global %d", name, e, index)
		}
	}
	if e := exports[GlobalExportPrefix+"2"]; e != nil {
		t.Errorf("the immutable global 2 is exported as %q", e.Name)
	}

	// The name section follows the functions.
	names := make(map[uint32]string)
	for _, n := range im.NameSection.FunctionNames {
		names[n.Index] = n.Name
	}
	if names[1] != PollModule+"."+PollFunc {
		t.Errorf("function 1 is named %q, want the poll function", names[1])
	}
	for _, n := range om.NameSection.FunctionNames {
		index := n.Index
		if index >= 1 { // defined
			index++
		}
		if names[index] != n.Name {
			t.Errorf("function %d (%s) is named %q", index, n.Name, names[index])
		}
	}
	for _, l := range om.NameSection.LocalNames {
		found := false
		for _, il := range im.NameSection.LocalNames {
			if il.Index == l.Index+1 && len(il.NameMap) == len(l.NameMap) {
				found = true
			}
		}
		if l.Index >= 1 && !found {
			t.Errorf("the local names of function %d did not move to %d", l.Index, l.Index+1)
		}
	}
}

// TestInstrumentLoops checks that loops of every shape compute the same
// with outlined poll points, with the flag clear and with the flag set
// at every poll point.
func TestInstrumentLoops(t *testing.T) {
	ctx := context.Background()
	original := buildWat(t, "loops")
	instrumented, err := Instrument(original)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, instrumented)
	for _, name := range []string{"nested", "table", "result", "params", "return"} {
		for _, n := range []uint64{0, 1, 2, 9, 50} {
			want := callExport(ctx, t, original, name, n)
			if got := callExport(ctx, t, instrumented, name, n); got != want {
				t.Errorf("%s(%d) = %d instrumented, %d original", name, n, got, want)
			}
			// Poll at every poll point: the poll function clears the
			// flag, the next poll point raises it again.
			var flag api.MutableGlobal
			polls := 0
			rt := watRuntime(ctx, t, func() { polls++; flag.Set(0) })
			mod, err := rt.Instantiate(ctx, instrumented)
			if err != nil {
				t.Fatal(err)
			}
			flag = mod.ExportedGlobal(FlagExport).(api.MutableGlobal)
			fn := mod.ExportedFunction(name)
			var got uint64
			for i := 0; ; i++ {
				flag.Set(1)
				before := polls
				callCtx, cancel := callCtx(ctx)
				res, err := fn.Call(callCtx, n)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				got = res[0]
				if polls == before || i == 3 {
					break
				}
			}
			if got != want || polls == 0 {
				t.Errorf("%s(%d) = %d after %d polls, want %d", name, n, got, polls, want)
			}
		}
	}
}

// TestPollPlacement checks where Instrument puts poll points.
func TestPollPlacement(t *testing.T) {
	original := buildWat(t, "placement")
	instrumented, err := Instrument(original)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, instrumented)
	m := decode(t, instrumented)
	flag := uint32(0) // the only global
	names := make(map[uint32]string)
	for _, n := range m.NameSection.FunctionNames {
		names[n.Index] = n.Name
	}
	type placement struct{ entry, polls int }
	got := make(map[string]placement)
	for i, c := range m.CodeSection {
		insts, err := wasmcode.DecodeBody(c.Body)
		if err != nil {
			t.Fatal(err)
		}
		var p placement
		for j, in := range insts {
			if in.Opcode == wasmcode.OpGlobalGet && in.Imm[0].Index() == flag {
				p.polls++
				if j == 0 {
					p.entry++
				}
			}
		}
		got[names[uint32(len(m.ImportSection)+i)]] = p
	}
	for name, want := range map[string]placement{
		"selfrec":           {entry: 1, polls: 1},
		"looprec":           {entry: 0, polls: 1},
		"even":              {entry: 1, polls: 1},
		"odd":               {entry: 1, polls: 1},
		"via_table":         {entry: 1, polls: 1},
		"caller":            {entry: 0, polls: 0},
		"other_type":        {entry: 0, polls: 0},
		"leaf":              {entry: 0, polls: 0},
		"prologue_loop":     {entry: 0, polls: 1},
		"loop_calls_polled": {entry: 0, polls: 0},
		"loops":             {entry: 0, polls: 2},
	} {
		if got[name] != want {
			t.Errorf("%s: %d poll points (%d at entry), want %d (%d at entry)", name, got[name].polls, got[name].entry, want.polls, want.entry)
		}
	}
}

func TestComponents(t *testing.T) {
	for _, tc := range []struct {
		succ [][]int
		want string // per node: 'c' on a cycle, '.' not
	}{
		{[][]int{{}}, "."},
		{[][]int{{0}}, "c"},
		{[][]int{{1}, {2}, {0}, {0}}, "ccc."},
		{[][]int{{1}, {2}, {}, {3, 0}}, "...c"},
		{[][]int{{1, 3}, {0}, {3}, {2}, {0}}, "cccc."},
	} {
		comp, cyclic := components(tc.succ)
		var got strings.Builder
		for v := range tc.succ {
			if cyclic[comp[v]] {
				got.WriteByte('c')
			} else {
				got.WriteByte('.')
			}
		}
		if got.String() != tc.want {
			t.Errorf("%v: got %s, want %s", tc.succ, got.String(), tc.want)
		}
	}
	// A chain deep enough to overflow a recursive implementation's
	// patience, closed into one cycle.
	const n = 200000
	succ := make([][]int, n)
	for i := range succ {
		succ[i] = []int{(i + 1) % n}
	}
	comp, cyclic := components(succ)
	for i := range succ {
		if comp[i] != comp[0] || !cyclic[comp[i]] {
			t.Fatalf("node %d: component %d (cyclic %v), want all in one cycle", i, comp[i], cyclic[comp[i]])
		}
	}
}

func ExampleInstrument() {
	// The smallest module: one function that loops forever.
	module := []byte{
		0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00,
		0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type () -> ()
		0x03, 0x02, 0x01, 0x00, // one function of type 0
		0x0A, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0C, 0x00, 0x0B, 0x0B, // loop br 0 end
	}
	instrumented, err := Instrument(module)
	if err != nil {
		fmt.Println(err)
		return
	}
	m, _ := wabinary.DecodeModule(instrumented, decodeFeatures)
	fmt.Println(m.ImportSection[0].Module + "." + m.ImportSection[0].Name)
	for _, e := range m.ExportSection {
		fmt.Println(e.Name)
	}
	// Output:
	// podctl.poll
	// podctl.flag
}
