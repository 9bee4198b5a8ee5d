package prepare

import (
	"errors"
	"fmt"

	"github.com/tetratelabs/wabin/binary"
	"github.com/tetratelabs/wabin/wasm"

	"github.com/podctl/podctl/wasm/internal/wasmcode"
)

// RewindExport is the export name of the function a prepared module is
// rewound through: asyncify_start_rewind, then a call of this function
// (instead of the entry point) resumes the unwound stack. A module
// prepared without the split (see splitRewind) does not export it; it is
// then rewound through its entry point.
const RewindExport = "podctl.rewind"

// errNoSplit says why splitRewind left a module as it was.
var errNoSplit = errors.New("module cannot be split")

// splitRewind gives every function Asyncify instrumented a twin, and
// makes the original run only forward. It is what makes a prepared module
// cheap to run (see ARCHITECTURE.md, "Fast bodies, rewinding twins").
//
// Asyncify's code serves three states: normal running, unwinding (after a
// call, when the callee began to unwind, the function saves its locals
// and returns) and rewinding (the function restores its locals and jumps
// back into the call it was in). Rewinding costs the most: every stretch
// of code between two calls is guarded by a check of the state, and every
// call by a check of the call index. Yet a guest rewinds only once per
// resume, through the frames that were on the stack at the stop.
//
// So each instrumented function F becomes two:
//
//   - F itself, at its own index (which exports, tables and calls name),
//     reads the state only to see whether a call it made began to unwind
//     (global.get state; i32.const 1; i32.eq, the one form Asyncify
//     gives that check). Every other read of the state is replaced by 0
//     (normal), which is what it reads whenever F is not rewinding, and
//     the optimizer then drops the rewinding code and its guards.
//   - Its twin F', appended after the other functions, is Asyncify's F
//     unchanged except for its calls: a call of an instrumented G calls
//     G' when the state is rewinding and G otherwise, and an indirect call
//     goes through a second table, a copy of the first that holds the
//     twins, when rewinding. The rewinding entry point is exported as
//     RewindExport.
//
// A rewind therefore runs only twins, down to the poll point it stopped
// at, and every call they make once running again goes to the fast
// functions: only the frames that were on the stack at a stop stay slow,
// until they return. F and F' are the same function as Asyncify made it,
// with the same locals and call indices, so either can unwind into a
// buffer the other rewinds.
//
// splitRewind needs the state global (read by asyncify_get_state) and, if
// an instrumented function calls indirectly, a single table that the
// module owns, does not export and never changes after instantiation
// (active segments at constant offsets): a table the code changed would
// leave the copy stale. Functions with more than one result, tail calls
// and call_ref are not supported. It returns errNoSplit (wrapped) if
// any of this does not hold; the module then keeps Asyncify's own code,
// which is correct, only slower.
func splitRewind(module []byte) ([]byte, error) {
	s, sections, err := newSplitter(module)
	if err != nil {
		return nil, err
	}
	m, codes := s.m, s.codes
	fast := make([]code, len(codes))
	var twins []code
	for i, c := range codes {
		if s.twin[i] == 0 {
			fast[i] = c
			continue
		}
		if fast[i], err = s.fastBody(c); err != nil {
			return nil, fmt.Errorf("function %d: %w", s.funcImports+uint32(i), err)
		}
		t, err := s.twinBody(i, c)
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", s.funcImports+uint32(i), err)
		}
		twins = append(twins, t)
	}

	funcs := appendU32(nil, uint32(len(m.FunctionSection)+len(twins)))
	for _, t := range m.FunctionSection {
		funcs = appendU32(funcs, t)
	}
	for i, t := range m.FunctionSection {
		if s.twin[i] != 0 {
			funcs = appendU32(funcs, t)
		}
	}
	sections = setSection(sections, wasm.SectionIDFunction, funcs)

	sections = setSection(sections, wasm.SectionIDCode, encodeCode(append(fast, twins...)))

	if s.indirect {
		t := m.TableSection[0]
		table := []byte{t.Type}
		if t.Max != nil {
			table = appendU32(appendU32(append(table, 0x01), t.Min), *t.Max)
		} else {
			table = appendU32(append(table, 0x00), t.Min)
		}
		sections = setSection(sections, wasm.SectionIDTable, appendVector(findSection(sections, wasm.SectionIDTable), 1, table))
		elems := findSection(sections, wasm.SectionIDElement)
		count := uint32(len(m.ElementSection))
		for _, e := range m.ElementSection {
			seg := appendU32(appendU32(nil, 2), 1) // flags 2: active, with a table index; table 1
			seg = append(seg, e.OffsetExpr.Opcode)
			seg = append(append(seg, e.OffsetExpr.Data...), wasm.OpcodeEnd)
			seg = appendU32(append(seg, 0x00), uint32(len(e.Init))) // element kind: funcref
			for _, f := range e.Init {
				seg = appendU32(seg, s.rewinding(*f))
			}
			elems = appendVector(elems, count, seg)
			count++
		}
		sections = setSection(sections, wasm.SectionIDElement, elems)
	}

	for k := range sections {
		if sections[k].id != wasm.SectionIDCustom {
			continue
		}
		if name, contents, err := sections[k].customName(); err == nil && name == "name" {
			if names, err := s.nameTwins(contents); err == nil {
				sections[k].payload = append(appendName(nil, name), names...)
			}
		}
	}

	exports := appendName(nil, RewindExport)
	exports = appendU32(append(exports, wasm.ExternTypeFunc), s.rewinding(s.entry))
	sections = setSection(sections, wasm.SectionIDExport, appendVector(findSection(sections, wasm.SectionIDExport), uint32(len(m.ExportSection)), exports))
	return joinSections(sections), nil
}

// splitter holds what splitRewind learns about an asyncified module.
type splitter struct {
	m           *wasm.Module
	codes       []code
	funcImports uint32
	poll, wait  uint32   // the poll function and poll_oneoff (or ^0)
	state       uint32   // Asyncify's state global
	entry       uint32   // the function exported as the entry point
	twin        []uint32 // by defined function: its twin's index, or 0
	indirect    bool     // some instrumented function calls indirectly
}

// newSplitter decodes an asyncified module and analyzes it for
// splitRewind, returning its sections too.
func newSplitter(module []byte) (*splitter, []section, error) {
	sections, err := splitSections(module)
	if err != nil {
		return nil, nil, err
	}
	m, err := binary.DecodeModule(module, decodeFeatures)
	if err != nil {
		return nil, nil, fmt.Errorf("decode asyncified module: %w", err)
	}
	codes, err := splitCode(findSection(sections, wasm.SectionIDCode))
	if err != nil {
		return nil, nil, fmt.Errorf("code section: %w", err)
	}
	s := &splitter{m: m, codes: codes, poll: ^uint32(0), wait: ^uint32(0)}
	for _, imp := range m.ImportSection {
		if imp.Type == wasm.ExternTypeFunc {
			switch {
			case imp.Module == PollModule && imp.Name == PollFunc:
				s.poll = s.funcImports
			case imp.Module == WaitModule && imp.Name == WaitFunc:
				s.wait = s.funcImports
			}
			s.funcImports++
		}
	}
	if err := s.analyze(); err != nil {
		return nil, nil, err
	}
	return s, sections, nil
}

// analyze finds the state global, the instrumented functions and their
// twins' indices, and checks that the module can be split.
func (s *splitter) analyze() error {
	m := s.m
	api := make(map[uint32]bool)
	getState, entry := -1, -1
	for _, e := range m.ExportSection {
		if e.Type != wasm.ExternTypeFunc {
			continue
		}
		switch e.Name {
		case "asyncify_get_state":
			getState = int(e.Index)
		case "_start":
			entry = int(e.Index)
		}
		for _, name := range asyncifyExports() {
			if e.Name == name {
				api[e.Index] = true
			}
		}
	}
	if s.poll == ^uint32(0) || getState < int(s.funcImports) || entry < 0 {
		return fmt.Errorf("%w: no poll import, asyncify_get_state or _start export", errNoSplit)
	}
	s.entry = uint32(entry)
	insts, err := wasmcode.DecodeBody(s.codes[getState-int(s.funcImports)].body)
	if err != nil || len(insts) != 2 || insts[0].Opcode != wasmcode.OpGlobalGet {
		return fmt.Errorf("%w: asyncify_get_state is not a global read", errNoSplit)
	}
	s.state = insts[0].Imm[0].Index()

	s.twin = make([]uint32, len(s.codes))
	next := s.funcImports + uint32(len(s.codes))
	tableChanged := false
	for i, c := range s.codes {
		f := s.funcImports + uint32(i)
		instrumented := false
		calls := false
		_, err := wasmcode.Walk(c.body, func(_ int, in *wasmcode.Instruction) error {
			switch in.Opcode {
			case wasmcode.OpGlobalGet:
				instrumented = instrumented || in.Imm[0].Index() == s.state
			case wasmcode.OpCallIndirect:
				calls = true
			case wasmcode.OpReturnCall, wasmcode.OpReturnCallIndirect, wasmcode.OpCallRef, wasmcode.OpReturnCallRef:
				return fmt.Errorf("%w: function %d makes tail calls or calls references", errNoSplit, f)
			case wasmcode.OpTableSet, wasmcode.OpTableGrow, wasmcode.OpTableFill, wasmcode.OpTableCopy, wasmcode.OpTableInit:
				tableChanged = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		if !instrumented || api[f] {
			continue
		}
		if t, ok := s.funcType(f); !ok || len(t.Results) > 1 {
			return fmt.Errorf("%w: function %d has more than one result", errNoSplit, f)
		}
		s.twin[i] = next
		next++
		s.indirect = s.indirect || calls
	}
	if s.twin[s.entry-s.funcImports] == 0 {
		return fmt.Errorf("%w: the entry point is not instrumented", errNoSplit)
	}
	if !s.indirect {
		return nil
	}
	// The twins' table copies the first table once: the first must be
	// the only one, the module's own and never changed.
	if tableChanged || len(m.TableSection) != 1 {
		return fmt.Errorf("%w: the table is changed, or there is not exactly one", errNoSplit)
	}
	for _, imp := range m.ImportSection {
		if imp.Type == wasm.ExternTypeTable {
			return fmt.Errorf("%w: the table is imported", errNoSplit)
		}
	}
	for _, e := range m.ExportSection {
		if e.Type == wasm.ExternTypeTable {
			return fmt.Errorf("%w: the table is exported", errNoSplit)
		}
	}
	for _, e := range m.ElementSection {
		if e.Mode != wasm.ElementModeActive || e.TableIndex != 0 || e.OffsetExpr == nil || e.OffsetExpr.Opcode != wasm.OpcodeI32Const {
			return fmt.Errorf("%w: an element segment is not active at a constant offset", errNoSplit)
		}
		for _, f := range e.Init {
			if f == nil {
				return fmt.Errorf("%w: an element segment holds null", errNoSplit)
			}
		}
	}
	return nil
}

// funcType returns the type of function f.
func (s *splitter) funcType(f uint32) (*wasm.FunctionType, bool) {
	var t uint32
	if f < s.funcImports {
		n := uint32(0)
		for _, imp := range s.m.ImportSection {
			if imp.Type == wasm.ExternTypeFunc {
				if n == f {
					t = imp.DescFunc
					break
				}
				n++
			}
		}
	} else if i := f - s.funcImports; int(i) < len(s.m.FunctionSection) {
		t = s.m.FunctionSection[i]
	} else {
		return nil, false
	}
	if int(t) >= len(s.m.TypeSection) {
		return nil, false
	}
	return s.m.TypeSection[t], true
}

// rewinding returns the function that rewinds in place of f: its twin,
// or f itself if Asyncify did not instrument it.
func (s *splitter) rewinding(f uint32) uint32 {
	if f >= s.funcImports && s.twin[f-s.funcImports] != 0 {
		return s.twin[f-s.funcImports]
	}
	return f
}

// fastBody returns c with every read of the state, except the checks for
// unwinding, replaced by the constant 0.
//
// Asyncify follows each call that can unwind (of the poll function or
// poll_oneoff, of an instrumented function, or indirect) with exactly one such check. That
// is verified: a function where the counts differ would be one whose
// unwinding this cannot tell apart, and splitRewind then gives up on
// the module (errNoSplit) rather than break it.
func (s *splitter) fastBody(c code) (code, error) {
	insts, err := wasmcode.DecodeBody(c.body)
	if err != nil {
		return code{}, err
	}
	calls, checks := 0, 0
	for j := range insts {
		in := &insts[j]
		switch {
		case in.Opcode == wasmcode.OpCallIndirect:
			calls++
		case in.Opcode == wasmcode.OpCall:
			if g := in.Imm[0].Index(); g == s.poll || g == s.wait || s.rewinding(g) != g {
				calls++
			}
		case in.Opcode == wasmcode.OpGlobalGet && in.Imm[0].Index() == s.state:
			if j+2 < len(insts) && insts[j+1].Opcode == wasmcode.OpI32Const && insts[j+1].Imm[0].Signed() == 1 && insts[j+2].Opcode == wasmcode.OpI32Eq {
				checks++ // state == unwinding
				continue
			}
			*in = wasmcode.New(wasmcode.OpI32Const, wasmcode.Immediate{Kind: wasmcode.S32})
		}
	}
	if calls != checks {
		return code{}, fmt.Errorf("%w: %d calls that can unwind, %d checks for unwinding", errNoSplit, calls, checks)
	}
	return code{locals: c.locals, body: wasmcode.Append(nil, insts...)}, nil
}

// twinBody returns the body of defined function i's twin: c, with each
// call of an instrumented function G replaced by
//
//	local.set (the arguments, last first)
//	global.get state; i32.const 2; i32.eq
//	if (result)  local.get (the arguments); call G'
//	else         local.get (the arguments); call G
//	end
//
// and each indirect call likewise choosing between the twins' table
// (rewinding) and the module's. The arguments are parked in locals added
// for the purpose, shared by all the calls of the function.
func (s *splitter) twinBody(i int, c code) (code, error) {
	insts, err := wasmcode.DecodeBody(c.body)
	if err != nil {
		return code{}, err
	}
	self, _ := s.funcType(s.funcImports + uint32(i))
	nLocals := uint32(len(self.Params) + len(s.m.CodeSection[i].LocalTypes))
	// Scratch locals, allocated by type as calls need them.
	scratch := make(map[wasm.ValueType][]uint32)
	var added []wasm.ValueType
	park := func(types []wasm.ValueType) []uint32 {
		used := make(map[wasm.ValueType]int)
		idx := make([]uint32, len(types))
		for k, t := range types {
			n := used[t]
			used[t]++
			for len(scratch[t]) <= n {
				scratch[t] = append(scratch[t], nLocals+uint32(len(added)))
				added = append(added, t)
			}
			idx[k] = scratch[t][n]
		}
		return idx
	}
	out := make([]wasmcode.Instruction, 0, len(insts)+len(insts)/4)
	for _, in := range insts {
		var (
			fast, slow wasmcode.Instruction
			t          *wasm.FunctionType
		)
		switch in.Opcode {
		case wasmcode.OpCall:
			g := in.Imm[0].Index()
			if g < s.funcImports || s.twin[g-s.funcImports] == 0 {
				out = append(out, in)
				continue
			}
			t, _ = s.funcType(g)
			fast, slow = in, wasmcode.New(wasmcode.OpCall, wasmcode.Uint(s.twin[g-s.funcImports]))
		case wasmcode.OpCallIndirect:
			ti := in.Imm[0].Index()
			if int(ti) >= len(s.m.TypeSection) {
				return code{}, fmt.Errorf("call_indirect of type %d", ti)
			}
			t = s.m.TypeSection[ti]
			fast, slow = in, wasmcode.New(wasmcode.OpCallIndirect, wasmcode.Uint(ti), wasmcode.Uint(1))
		default:
			out = append(out, in)
			continue
		}
		args := t.Params
		if in.Opcode == wasmcode.OpCallIndirect {
			args = append(append([]wasm.ValueType(nil), args...), wasm.ValueTypeI32) // the table index
		}
		locals := park(args)
		for k := len(locals) - 1; k >= 0; k-- {
			out = append(out, wasmcode.New(wasmcode.OpLocalSet, wasmcode.Uint(locals[k])))
		}
		bt := wasmcode.BlockType(-0x40) // empty
		if len(t.Results) == 1 {
			bt = wasmcode.BlockType(int64(t.Results[0]) - 0x80) // a value type, as a negative s33
		}
		out = append(out,
			wasmcode.New(wasmcode.OpGlobalGet, wasmcode.Uint(s.state)),
			wasmcode.New(wasmcode.OpI32Const, wasmcode.Immediate{Value: 2, Kind: wasmcode.S32}),
			wasmcode.New(wasmcode.OpI32Eq),
			wasmcode.New(wasmcode.OpIf, bt))
		for k, call := range []wasmcode.Instruction{slow, fast} {
			if k == 1 {
				out = append(out, wasmcode.New(wasmcode.OpElse))
			}
			for _, l := range locals {
				out = append(out, wasmcode.New(wasmcode.OpLocalGet, wasmcode.Uint(l)))
			}
			out = append(out, call)
		}
		out = append(out, wasmcode.New(wasmcode.OpEnd))
	}
	locals := c.locals
	if len(added) > 0 {
		locals = appendLocals(c.locals, added)
	}
	return code{locals: locals, body: wasmcode.Append(nil, out...)}, nil
}

// nameTwins returns the contents of a "name" section with a name for
// each twin in its function names: its original's, with " (rewind)"
// added, so that a trap in a twin reads like one in its original. The
// twins have the highest indices, so their entries go last, in order.
func (s *splitter) nameTwins(contents []byte) ([]byte, error) {
	r := reader{b: contents}
	out := make([]byte, 0, len(contents)*2)
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		sub, err := r.bytes()
		if err != nil {
			return nil, err
		}
		if id == nameSubFunctions {
			sr := reader{b: sub}
			count, err := sr.count()
			if err != nil {
				return nil, err
			}
			var entries, twins []byte
			added := uint32(0)
			for i := uint32(0); i < count; i++ {
				f, err := sr.u32()
				if err != nil {
					return nil, err
				}
				start := sr.pos
				name, err := sr.bytes()
				if err != nil {
					return nil, err
				}
				entries = append(appendU32(entries, f), sub[start:sr.pos]...)
				if tw := s.rewinding(f); tw != f {
					twins = appendName(appendU32(twins, tw), string(name)+" (rewind)")
					added++
				}
			}
			sub = append(append(appendU32(nil, count+added), entries...), twins...)
		}
		out = appendU32(append(out, id), uint32(len(sub)))
		out = append(out, sub...)
	}
	return out, nil
}

// appendLocals returns the local declarations locals (a vector, as
// encoded) followed by one local of each of types.
func appendLocals(locals []byte, types []wasm.ValueType) []byte {
	r := reader{b: locals}
	n, _ := r.u32() // read before, by splitCode
	out := appendU32(make([]byte, 0, len(locals)+2*len(types)+5), n+uint32(len(types)))
	out = append(out, locals[r.pos:]...)
	for _, t := range types {
		out = append(appendU32(out, 1), t)
	}
	return out
}
