package prepare

import (
	"bytes"
	"fmt"

	"github.com/tetratelabs/wabin/binary"
	"github.com/tetratelabs/wabin/leb128"
	"github.com/tetratelabs/wabin/wasm"

	"github.com/podctl/podctl/wasm/internal/wasmcode"
)

// stubBody is the code entry of a stripped function: no locals, and a
// body that traps.
var stubBody = code{locals: []byte{0}, body: []byte{byte(wasmcode.OpUnreachable), byte(wasmcode.OpEnd)}}

// stripRewind returns the start module of a split module (see
// splitRewind): the same module, with the body of every function that
// only a rewind can reach replaced by one that traps. Those are the
// twins, and whatever only they call or reference; RewindExport and the
// twins' table stay, only their code goes.
//
// A fresh vessel starts from the start module: it runs the fast bodies
// only, and compiling it costs wazero half as much as compiling the
// prepared module (validation and code generation are linear in the
// code). Every function a start module keeps is byte for byte the
// prepared module's, at the same index, so a stack it unwinds is one the
// prepared module rewinds; resuming, in this process or another, needs
// the prepared module.
//
// A function is kept if it is reachable from the module's roots other
// than RewindExport: its other exported functions, its start function,
// the functions referenced by its global initializers and by passive or
// declarative element segments, and, for each table that kept code uses
// (or that is imported or exported), the functions of the active
// segments that fill it. The twins' table is used by twins only, so its
// segments keep nothing. It returns errNoSplit (wrapped) for a module
// without RewindExport.
func stripRewind(module []byte) ([]byte, error) {
	sections, err := splitSections(module)
	if err != nil {
		return nil, err
	}
	m, err := binary.DecodeModule(module, decodeFeatures)
	if err != nil {
		return nil, fmt.Errorf("decode prepared module: %w", err)
	}
	codes, err := splitCode(findSection(sections, wasm.SectionIDCode))
	if err != nil {
		return nil, fmt.Errorf("code section: %w", err)
	}
	var funcImports, tableImports uint32
	for _, imp := range m.ImportSection {
		switch imp.Type {
		case wasm.ExternTypeFunc:
			funcImports++
		case wasm.ExternTypeTable:
			tableImports++
		}
	}
	live := make([]bool, int(funcImports)+len(codes))
	var work []uint32
	keep := func(f uint32) {
		if int(f) < len(live) && !live[f] {
			live[f] = true
			work = append(work, f)
		}
	}
	tables := make([]bool, int(tableImports)+len(m.TableSection))
	useTable := func(t uint32) {
		if int(t) >= len(tables) || tables[t] {
			return
		}
		tables[t] = true
		for _, e := range m.ElementSection {
			if e.Mode == wasm.ElementModeActive && e.TableIndex == t {
				for _, f := range e.Init {
					if f != nil {
						keep(*f)
					}
				}
			}
		}
	}
	useAllTables := func() {
		for t := range tables {
			useTable(uint32(t))
		}
	}

	rewindExported := false
	for _, e := range m.ExportSection {
		switch {
		case e.Type == wasm.ExternTypeFunc && e.Name == RewindExport:
			rewindExported = true
		case e.Type == wasm.ExternTypeFunc:
			keep(e.Index)
		case e.Type == wasm.ExternTypeTable:
			useTable(e.Index)
		}
	}
	if !rewindExported {
		return nil, fmt.Errorf("%w: no %s export", errNoSplit, RewindExport)
	}
	for t := uint32(0); t < tableImports; t++ {
		useTable(t)
	}
	if m.StartSection != nil {
		keep(*m.StartSection)
	}
	for _, g := range m.GlobalSection {
		if g.Init != nil && g.Init.Opcode == wasm.OpcodeRefFunc {
			if f, _, err := leb128.DecodeUint32(bytes.NewReader(g.Init.Data)); err == nil {
				keep(f)
			}
		}
	}
	for _, e := range m.ElementSection {
		if e.Mode != wasm.ElementModeActive {
			for _, f := range e.Init {
				if f != nil {
					keep(*f)
				}
			}
		}
	}

	for len(work) > 0 {
		f := work[len(work)-1]
		work = work[:len(work)-1]
		if f < funcImports {
			continue
		}
		_, err := wasmcode.Walk(codes[f-funcImports].body, func(_ int, in *wasmcode.Instruction) error {
			switch in.Opcode {
			case wasmcode.OpCall, wasmcode.OpReturnCall, wasmcode.OpRefFunc:
				keep(in.Imm[0].Index())
			case wasmcode.OpCallIndirect, wasmcode.OpReturnCallIndirect:
				useTable(in.Imm[1].Index())
			case wasmcode.OpTableGet, wasmcode.OpTableSet, wasmcode.OpTableInit, wasmcode.OpTableCopy,
				wasmcode.OpTableGrow, wasmcode.OpTableSize, wasmcode.OpTableFill, wasmcode.OpCallRef, wasmcode.OpReturnCallRef:
				useAllTables()
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", f, err)
		}
	}

	for i := range codes {
		if !live[funcImports+uint32(i)] {
			codes[i] = stubBody
		}
	}
	return joinSections(setSection(sections, wasm.SectionIDCode, encodeCode(codes))), nil
}

// encodeCode returns the payload of a code section holding codes.
func encodeCode(codes []code) []byte {
	payload := appendU32(nil, uint32(len(codes)))
	for _, c := range codes {
		payload = appendU32(payload, uint32(len(c.locals)+len(c.body)))
		payload = append(append(payload, c.locals...), c.body...)
	}
	return payload
}
