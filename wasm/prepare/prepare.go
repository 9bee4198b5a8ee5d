// Package prepare turns an unmodified WASI module into a prepared module:
// one that podctl can stop at a poll point, unwind into its own linear
// memory, snapshot, and resume on any host.
//
// Preparing is two steps. Instrument adds to the module an imported poll
// function, an exported flag global the host sets to ask for a stop, poll
// points that call the poll function when the flag is set, and exports of
// every mutable global, so that the host can read and write the whole
// state. Asyncify then runs Binaryen's Asyncify transformation on the
// result, which lets the poll function unwind the call stack into linear
// memory (asyncify_start_unwind) and later rewind it
// (asyncify_start_rewind, then a call of RewindExport), in this instance
// or in a fresh one on another host, and splits each function it changed
// into a fast body and a twin that rewinds (see splitRewind). Cache does
// both once per module and keeps the result by content hash.
//
// # Poll points
//
// A stop request must be honoured quickly, whatever the guest does, and
// without help from the Go scheduler (wazero's compiled code is not
// preemptible). Any run of code that does not return to the host either
// iterates a loop or recurses, so there is a poll point at the header of
// every loop and on every cycle of the call graph:
//
//   - Every loop header. A loop whose body, before it branches or calls
//     anything else, calls a function with an entry poll point has none:
//     each iteration polls there.
//   - The entry of every function on a cycle of the call graph, unless
//     each of its calls that can close the cycle (to a function of its
//     own strongly connected component) is inside a loop, whose header
//     poll point is then passed before each of them, or its body reaches
//     a loop header before it calls or branches anywhere (as every Go
//     function does).
//
// Indirect calls count as calls to every function of a matching type
// whose reference the module takes (in an element segment, a global or
// with ref.func; when a table is imported or exported, every exported
// function too). Imported functions are assumed not to call back into the
// module, as WASI's do not.
//
// A poll point costs one global read and a branch when the flag is clear.
// At a loop header the call of the poll function is moved out of the loop
// (see polls.go), which keeps both wazero's code and Asyncify's
// instrumentation of the loop body as fast as without the poll point.
package prepare

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/tetratelabs/wabin/binary"
	"github.com/tetratelabs/wabin/wasm"
)

// Names the instrumentation adds to a module.
const (
	// PollModule is the import module of the poll function.
	PollModule = "podctl"
	// PollFunc is the import name of the poll function, of type
	// () -> (). The guest calls it at a poll point when the flag global
	// is non-zero.
	PollFunc = "poll"
	// FlagExport is the export name of the flag global, a mutable i32
	// that starts at zero: the host sets it non-zero to request a stop.
	// The poll function must clear it, or unwind the stack: at a loop
	// header the guest checks the flag again when the poll function
	// returns, and calls it again as long as the flag is set (which
	// also lets a host keep a guest parked there).
	FlagExport = "podctl.flag"
	// WaitModule and WaitFunc name the WASI function a guest waits in,
	// poll_oneoff, which Asyncify unwinds through too, so that a host
	// can stop a guest that sleeps (see wasi.Waiter).
	WaitModule = "wasi_snapshot_preview1"
	WaitFunc   = "poll_oneoff"
	// WaitExport re-exports poll_oneoff from a prepared module that
	// imports it: it tells a host that Asyncify unwinds through it (a
	// module prepared before it did lacks the export).
	WaitExport = "podctl.wait"
	// GlobalExportPrefix, followed by a global's index in the decimal,
	// is the export name of every mutable global the original module
	// defines. The index is that of the original module's global index
	// space, imported globals included.
	GlobalExportPrefix = "podctl.global."
)

// ErrInstrumented is returned by Instrument for a module that already has
// podctl's instrumentation.
var ErrInstrumented = errors.New("module is already instrumented")

// decodeFeatures are the WebAssembly features the section decoder accepts.
// Instructions are decoded by wasmcode, which knows more.
const decodeFeatures = wasm.CoreFeaturesV2

// Instrument adds to a module the import of the poll function, the flag
// global and its export, the exports of the module's mutable globals, and
// poll points at every loop header and on every cycle of the call graph.
// See the package documentation.
//
// The poll function is appended to the imported functions, which shifts
// the index of every defined function by one: Instrument renumbers the
// function indices of calls, ref.func, the start function, exports,
// element segments, global initializers and the "name" section.
func Instrument(module []byte) ([]byte, error) {
	out, err := instrument(module)
	if err != nil {
		return nil, fmt.Errorf("instrument: %w", err)
	}
	return out, nil
}

// instrument is Instrument without the context on errors.
func instrument(module []byte) ([]byte, error) {
	m, err := binary.DecodeModule(module, decodeFeatures)
	if err != nil {
		return nil, fmt.Errorf("decode module: %w", err)
	}
	sections, err := splitSections(module)
	if err != nil {
		return nil, fmt.Errorf("decode module: %w", err)
	}
	in, err := newInstrumenter(m, sections)
	if err != nil {
		return nil, err
	}
	if err := in.placePolls(); err != nil {
		return nil, err
	}
	return in.rewrite()
}

// instrumenter holds one module being instrumented.
type instrumenter struct {
	m        *wasm.Module
	sections []section
	codes    []code

	funcImports   uint32 // imported functions: the poll function's index
	globalImports uint32 // imported globals
	pollType      uint32 // type index of () -> ()
	newType       bool   // whether pollType is a type to append
	flag          uint32 // global index of the flag

	// entryPoll says which defined functions get a poll point at entry.
	entryPoll []bool
}

// newInstrumenter checks that a module can be instrumented and works out
// the indices the instrumentation uses.
func newInstrumenter(m *wasm.Module, sections []section) (*instrumenter, error) {
	in := &instrumenter{m: m, sections: sections}
	for _, imp := range m.ImportSection {
		if imp.Module == PollModule && imp.Name == PollFunc {
			return nil, ErrInstrumented
		}
		switch imp.Type {
		case wasm.ExternTypeFunc:
			in.funcImports++
		case wasm.ExternTypeGlobal:
			in.globalImports++
		}
	}
	for _, e := range m.ExportSection {
		if e.Name == FlagExport {
			return nil, ErrInstrumented
		}
	}
	in.flag = in.globalImports + uint32(len(m.GlobalSection))
	in.pollType = uint32(len(m.TypeSection))
	in.newType = true
	for i, t := range m.TypeSection {
		if len(t.Params) == 0 && len(t.Results) == 0 {
			in.pollType, in.newType = uint32(i), false
			break
		}
	}
	if p := findSection(sections, wasm.SectionIDCode); p != nil {
		codes, err := splitCode(p)
		if err != nil {
			return nil, fmt.Errorf("code section: %w", err)
		}
		in.codes = codes
	}
	if len(in.codes) != len(m.FunctionSection) {
		return nil, fmt.Errorf("%d function bodies for %d functions", len(in.codes), len(m.FunctionSection))
	}
	return in, nil
}

// remap returns the new index of the function at index f of the original
// module.
func (in *instrumenter) remap(f uint32) uint32 {
	if f < in.funcImports {
		return f
	}
	return f + 1
}

// funcType returns the type of the function at index f of the original
// module.
func (in *instrumenter) funcType(f uint32) (*wasm.FunctionType, bool) {
	var t uint32
	if f < in.funcImports {
		i := uint32(0)
		for _, imp := range in.m.ImportSection {
			if imp.Type != wasm.ExternTypeFunc {
				continue
			}
			if i == f {
				t = imp.DescFunc
				break
			}
			i++
		}
	} else {
		d := f - in.funcImports
		if d >= uint32(len(in.m.FunctionSection)) {
			return nil, false
		}
		t = in.m.FunctionSection[d]
	}
	if t >= uint32(len(in.m.TypeSection)) {
		return nil, false
	}
	return in.m.TypeSection[t], true
}

// signature returns a key that is equal for structurally equal function
// types: call_indirect compares types by structure, not by index.
func signature(t *wasm.FunctionType) string {
	return string(t.Params) + "\x00" + string(t.Results)
}

// placePolls decides which functions get an entry poll point: those on a
// cycle of the call graph with a call that can close the cycle outside
// any loop, and whose body does not start by reaching a loop header (see
// funcFacts.entryReachesLoop). A call inside a loop needs no entry poll
// point: the loop's own is passed before it.
//
// The graph has a node per defined function and one per function
// signature called indirectly. An indirect call is an edge to its
// signature's node, which has an edge to every function of that
// signature whose reference escapes: this keeps the graph linear in the
// size of the module where edges from every indirect call site to every
// candidate would be quadratic, and it has the same cycles.
func (in *instrumenter) placePolls() error {
	n := len(in.codes)
	escapes := make(map[uint32]bool)
	refs := func(f uint32) { escapes[f] = true }
	facts := make([]funcFacts, n)
	for i, c := range in.codes {
		var err error
		if facts[i], err = scanFunction(c.body, refs); err != nil {
			return fmt.Errorf("function %d: %w", in.funcImports+uint32(i), err)
		}
	}
	if p := findSection(in.sections, wasm.SectionIDElement); p != nil {
		if _, err := rewriteElements(p, nil, refs); err != nil {
			return fmt.Errorf("element section: %w", err)
		}
	}
	if p := findSection(in.sections, wasm.SectionIDGlobal); p != nil {
		if _, err := rewriteGlobals(p, nil, refs); err != nil {
			return fmt.Errorf("global section: %w", err)
		}
	}
	if in.tablesShared() {
		// The host can store any exported function in the table.
		for _, e := range in.m.ExportSection {
			if e.Type == wasm.ExternTypeFunc {
				escapes[e.Index] = true
			}
		}
	}

	// Functions in index order, so that the graph, like everything else
	// here, does not depend on the order of a map.
	escaped := make([]uint32, 0, len(escapes))
	for f := range escapes {
		escaped = append(escaped, f)
	}
	slices.Sort(escaped)
	succ := make([][]int, n)
	sigNode := make(map[string]int) // signature -> node
	var sigTargets [][]int          // node-n -> functions
	for _, f := range escaped {
		if f < in.funcImports {
			continue // a host function does not call back
		}
		t, ok := in.funcType(f)
		if !ok {
			return fmt.Errorf("function %d referenced but not defined", f)
		}
		key := signature(t)
		node, ok := sigNode[key]
		if !ok {
			node = n + len(sigTargets)
			sigNode[key] = node
			sigTargets = append(sigTargets, nil)
		}
		sigTargets[node-n] = append(sigTargets[node-n], int(f-in.funcImports))
	}
	for i, fa := range facts {
		for _, c := range fa.calls {
			if c.target >= in.funcImports+uint32(n) {
				return fmt.Errorf("function %d: call of function %d, which is not defined", in.funcImports+uint32(i), c.target)
			}
			if c.target >= in.funcImports {
				succ[i] = append(succ[i], int(c.target-in.funcImports))
			}
		}
		for _, c := range fa.indirect {
			node, err := in.indirectNode(sigNode, c.target)
			if err != nil {
				return fmt.Errorf("function %d: %w", in.funcImports+uint32(i), err)
			}
			if node >= 0 {
				succ[i] = append(succ[i], node)
			}
		}
	}
	succ = append(succ, sigTargets...)
	comp, cyclic := components(succ)

	// A function on a cycle needs an entry poll point unless a poll point
	// precedes each of its calls that can close a cycle: a call to a
	// function of its own component is one.
	in.entryPoll = make([]bool, n)
	for i, fa := range facts {
		if !cyclic[comp[i]] || fa.entryReachesLoop {
			continue
		}
		for _, c := range fa.calls {
			if !c.inLoop && c.target >= in.funcImports && comp[c.target-in.funcImports] == comp[i] {
				in.entryPoll[i] = true
			}
		}
		for _, c := range fa.indirect {
			if node, _ := in.indirectNode(sigNode, c.target); !c.inLoop && node >= 0 && comp[node] == comp[i] {
				in.entryPoll[i] = true
			}
		}
	}
	return nil
}

// indirectNode returns the call graph node of the signature of type
// index t, or -1 when no function of that signature escapes.
func (in *instrumenter) indirectNode(sigNode map[string]int, t uint32) (int, error) {
	if t >= uint32(len(in.m.TypeSection)) {
		return 0, fmt.Errorf("indirect call of type %d, which is not defined", t)
	}
	if node, ok := sigNode[signature(in.m.TypeSection[t])]; ok {
		return node, nil
	}
	return -1, nil
}

// tablesShared reports whether the host can see one of the module's
// tables: whether one is imported or exported.
func (in *instrumenter) tablesShared() bool {
	for _, imp := range in.m.ImportSection {
		if imp.Type == wasm.ExternTypeTable {
			return true
		}
	}
	for _, e := range in.m.ExportSection {
		if e.Type == wasm.ExternTypeTable {
			return true
		}
	}
	return false
}

// rewrite encodes the instrumented module.
func (in *instrumenter) rewrite() ([]byte, error) {
	s := in.sections
	poll := in.funcImports

	if in.newType {
		types := findSection(s, wasm.SectionIDType)
		s = setSection(s, wasm.SectionIDType, appendVector(types, uint32(len(in.m.TypeSection)), []byte{0x60, 0x00, 0x00}))
	}

	imp := appendName(nil, PollModule)
	imp = appendName(imp, PollFunc)
	imp = appendU32(append(imp, wasm.ExternTypeFunc), in.pollType)
	s = setSection(s, wasm.SectionIDImport, appendVector(findSection(s, wasm.SectionIDImport), uint32(len(in.m.ImportSection)), imp))

	flag := []byte{wasm.ValueTypeI32, 0x01, wasm.OpcodeI32Const, 0x00, wasm.OpcodeEnd}
	globals, err := rewriteGlobals(findSection(s, wasm.SectionIDGlobal), in.remap, nil, flag)
	if err != nil {
		return nil, fmt.Errorf("global section: %w", err)
	}
	s = setSection(s, wasm.SectionIDGlobal, globals)

	exports, err := in.exports()
	if err != nil {
		return nil, err
	}
	s = setSection(s, wasm.SectionIDExport, exports)

	if in.m.StartSection != nil {
		s = setSection(s, wasm.SectionIDStart, appendU32(nil, in.remap(*in.m.StartSection)))
	}

	if p := findSection(s, wasm.SectionIDElement); p != nil {
		elems, err := rewriteElements(p, in.remap, nil)
		if err != nil {
			return nil, fmt.Errorf("element section: %w", err)
		}
		s = setSection(s, wasm.SectionIDElement, elems)
	}

	if len(in.codes) > 0 {
		codes, err := in.rewriteCode()
		if err != nil {
			return nil, err
		}
		s = setSection(s, wasm.SectionIDCode, codes)
	}

	for i := 0; i < len(s); i++ {
		if s[i].id != wasm.SectionIDCustom {
			continue
		}
		name, contents, err := s[i].customName()
		if err != nil || name != "name" {
			continue
		}
		names, err := rewriteNames(contents, in.remap, poll, PollModule+"."+PollFunc)
		if err != nil {
			// Names are for debugging only, and wrong names are worse
			// than none.
			s = append(s[:i], s[i+1:]...)
			i--
			continue
		}
		s[i].payload = append(appendName(nil, name), names...)
	}
	return joinSections(s), nil
}

// appendVector returns the payload of a vector section holding the
// count elements of payload (nil for a new section) followed by the
// already encoded element.
func appendVector(payload []byte, count uint32, element []byte) []byte {
	r := reader{b: payload}
	rest := payload
	if payload != nil {
		if _, err := r.u32(); err == nil {
			rest = payload[r.pos:]
		}
	}
	out := appendU32(make([]byte, 0, len(payload)+len(element)+5), count+1)
	out = append(out, rest...)
	return append(out, element...)
}

// exports encodes the export section: the module's exports with function
// indices renumbered, the flag global, and every mutable global the
// module defines.
func (in *instrumenter) exports() ([]byte, error) {
	names := make(map[string]*wasm.Export, len(in.m.ExportSection))
	var entries []byte
	count := uint32(0)
	add := func(name string, kind wasm.ExternType, index uint32) {
		entries = appendName(entries, name)
		entries = appendU32(append(entries, kind), index)
		count++
	}
	for _, e := range in.m.ExportSection {
		names[e.Name] = e
		index := e.Index
		if e.Type == wasm.ExternTypeFunc {
			index = in.remap(index)
		}
		add(e.Name, e.Type, index)
	}
	add(FlagExport, wasm.ExternTypeGlobal, in.flag)
	for i, g := range in.m.GlobalSection {
		if !g.Type.Mutable {
			continue
		}
		index := in.globalImports + uint32(i)
		name := GlobalExportPrefix + strconv.FormatUint(uint64(index), 10)
		if e, ok := names[name]; ok {
			if e.Type != wasm.ExternTypeGlobal || e.Index != index {
				return nil, fmt.Errorf("export %q is taken by another definition", name)
			}
			continue
		}
		add(name, wasm.ExternTypeGlobal, index)
	}
	return append(appendU32(nil, count), entries...), nil
}
