package prepare

import (
	"fmt"

	"github.com/tetratelabs/wabin/wasm"

	"github.com/podctl/podctl/wasm/internal/wasmcode"
)

// Poll points come in two shapes.
//
// An inline poll point is the plain check, used at the entry of a function
// that can recurse and at the header of a loop that takes parameters:
//
//	global.get $flag
//	if
//	  call $poll
//	end
//
// An outlined poll point is used at the header of every other loop. The
// call is moved out of the loop, which is wrapped in three blocks so that
// the poll can be made outside it and the loop entered again:
//
//	block $done (result t*)     ;; the loop's own block type
//	  loop $repoll (result t*)
//	    block $polled
//	      loop $l (result t*)   ;; the original loop
//	        global.get $flag
//	        br_if $polled
//	        ...                 ;; the original body
//	      end
//	      br $done
//	    end
//	    call $poll
//	    br $repoll
//	  end
//	end
//
// Each iteration still costs one global read and a branch, but the loop
// no longer contains a call. That matters twice. wazero's optimizing
// compiler treats a value live across a call, even one never made, as
// something to keep in memory, which slowed tight loops down by half or
// more. And Asyncify, which must be able to resume at every call that can
// unwind, guards the code around such calls with checks of its state;
// code without those calls, such as the body of $l, runs unguarded. On a
// sieve-like loop the inline form cost +75 % and +210 % after Asyncify,
// the outlined form +8 % and nothing measurable.
//
// The three blocks shift the depth of every branch from inside the loop
// to a label outside it by three: the rewriter keeps a stack of the
// enclosing blocks to renumber them.

// outlinedWrapperDepth is the number of labels an outlined poll point puts
// around a loop.
const outlinedWrapperDepth = 3

// rewriteCode encodes the code section with function indices renumbered
// and poll points inserted.
func (in *instrumenter) rewriteCode() ([]byte, error) {
	out := appendU32(make([]byte, 0, len(findSection(in.sections, wasm.SectionIDCode))*5/4), uint32(len(in.codes)))
	fr := functionRewriter{in: in}
	for i, c := range in.codes {
		body, err := fr.rewrite(i, c)
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", in.funcImports+uint32(i), err)
		}
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	return out, nil
}

// functionRewriter rewrites function bodies, reusing its buffers from one
// function to the next.
type functionRewriter struct {
	in     *instrumenter
	body   []byte
	frames []bool // the enclosing blocks: whether each is an outlined loop
}

// rewrite returns the rewritten code entry (locals and body) of the
// defined function i.
func (fr *functionRewriter) rewrite(i int, c code) ([]byte, error) {
	in := fr.in
	insts, err := wasmcode.DecodeBody(c.body)
	if err != nil {
		return nil, err
	}
	// Outlining adds labels. Exception handling instructions have labels
	// and scoping rules of their own (and Asyncify does not support
	// them): a function that uses them only gets inline poll points.
	outline := !usesExceptions(insts)

	fr.body = append(fr.body[:0], c.locals...)
	fr.frames = append(fr.frames[:0], false) // the function's own block
	if in.entryPoll[i] {
		fr.inlinePoll()
	}
	for j := range insts {
		inst := &insts[j]
		switch inst.Opcode {
		case wasmcode.OpCall, wasmcode.OpReturnCall, wasmcode.OpRefFunc:
			inst.Imm[0].Value = uint64(in.remap(inst.Imm[0].Index()))
		case wasmcode.OpBr, wasmcode.OpBrIf, wasmcode.OpBrOnNull, wasmcode.OpBrOnNonNull:
			fr.relabel(&inst.Imm[0])
		case wasmcode.OpBrTable:
			for k := 1; k < len(inst.Imm); k++ {
				fr.relabel(&inst.Imm[k])
			}
		}

		switch inst.Opcode {
		case wasmcode.OpBlock, wasmcode.OpIf, wasmcode.OpTry, wasmcode.OpTryTable:
			fr.frames = append(fr.frames, false)
			fr.body = inst.Append(fr.body)
		case wasmcode.OpLoop:
			bt := inst.Imm[0].Signed()
			switch {
			case in.pollFree(insts[j+1:]):
				fr.frames = append(fr.frames, false)
				fr.body = inst.Append(fr.body)
			case outline && !in.hasParams(bt):
				fr.frames = append(fr.frames, true)
				fr.body = wasmcode.Append(fr.body,
					wasmcode.New(wasmcode.OpBlock, inst.Imm[0]),                                 // $done
					wasmcode.New(wasmcode.OpLoop, inst.Imm[0]),                                  // $repoll
					wasmcode.New(wasmcode.OpBlock, wasmcode.BlockType(wasmcode.BlockTypeEmpty)), // $polled
					*inst,
					wasmcode.New(wasmcode.OpGlobalGet, wasmcode.Uint(in.flag)),
					wasmcode.New(wasmcode.OpBrIf, wasmcode.Uint(1)), // $polled
				)
			default:
				fr.frames = append(fr.frames, false)
				fr.body = inst.Append(fr.body)
				fr.inlinePoll()
			}
		case wasmcode.OpEnd, wasmcode.OpDelegate:
			outlined := fr.frames[len(fr.frames)-1]
			fr.frames = fr.frames[:len(fr.frames)-1]
			if inst.Opcode == wasmcode.OpDelegate {
				fr.relabel(&inst.Imm[0])
			}
			fr.body = inst.Append(fr.body)
			if outlined {
				fr.body = wasmcode.Append(fr.body,
					wasmcode.New(wasmcode.OpBr, wasmcode.Uint(2)), // $done
					wasmcode.New(wasmcode.OpEnd),                  // $polled
					wasmcode.New(wasmcode.OpCall, wasmcode.Uint(in.funcImports)),
					wasmcode.New(wasmcode.OpBr, wasmcode.Uint(0)), // $repoll
					wasmcode.New(wasmcode.OpEnd),                  // $repoll
					wasmcode.New(wasmcode.OpEnd),                  // $done
				)
			}
		default:
			fr.body = inst.Append(fr.body)
		}
	}
	if len(fr.frames) != 0 {
		return nil, fmt.Errorf("%d blocks left open", len(fr.frames))
	}
	return fr.body, nil
}

// inlinePoll appends an inline poll point.
func (fr *functionRewriter) inlinePoll() {
	fr.body = wasmcode.Append(fr.body,
		wasmcode.New(wasmcode.OpGlobalGet, wasmcode.Uint(fr.in.flag)),
		wasmcode.New(wasmcode.OpIf, wasmcode.BlockType(wasmcode.BlockTypeEmpty)),
		wasmcode.New(wasmcode.OpCall, wasmcode.Uint(fr.in.funcImports)),
		wasmcode.New(wasmcode.OpEnd),
	)
}

// relabel renumbers a branch's label index for the outlined loops it
// branches out of: each puts three more labels between the branch and a
// target outside it. The target itself may be an outlined loop: branching
// to it continues the loop, whose label is the innermost of the four.
func (fr *functionRewriter) relabel(label *wasmcode.Immediate) {
	d := int(label.Index())
	top := len(fr.frames) - 1
	extra := 0
	for k := top; k > top-d && k >= 0; k-- {
		if fr.frames[k] {
			extra += outlinedWrapperDepth
		}
	}
	label.Value += uint64(extra)
}

// hasParams reports whether a block type takes parameters.
func (in *instrumenter) hasParams(bt int64) bool {
	if bt < 0 {
		return false // empty, or a single result type
	}
	return int(bt) >= len(in.m.TypeSection) || len(in.m.TypeSection[bt].Params) > 0
}

// pollFree reports whether a loop whose body starts with rest needs no
// poll point of its own: when, before anything in it can branch or call
// anything else, it calls a function with an entry poll point. Each
// iteration then polls there.
func (in *instrumenter) pollFree(rest []wasmcode.Instruction) bool {
	for k := range rest {
		op := rest[k].Opcode
		if op == wasmcode.OpCall {
			f := rest[k].Imm[0].Index()
			return f >= in.funcImports && in.entryPoll[f-in.funcImports]
		}
		if op == wasmcode.OpLoop || !straightLine(op) {
			return false
		}
	}
	return false
}

// usesExceptions reports whether a function body uses exception handling.
func usesExceptions(insts []wasmcode.Instruction) bool {
	for k := range insts {
		switch insts[k].Opcode {
		case wasmcode.OpTry, wasmcode.OpCatch, wasmcode.OpThrow, wasmcode.OpRethrow,
			wasmcode.OpThrowRef, wasmcode.OpDelegate, wasmcode.OpCatchAll, wasmcode.OpTryTable:
			return true
		}
	}
	return false
}
