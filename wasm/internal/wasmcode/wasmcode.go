// Package wasmcode decodes and encodes WebAssembly instructions: the code
// of function bodies and the constant expressions of globals, element and
// data segments.
//
// Decoding is exact: every integer immediate remembers how many bytes its
// LEB128 encoding took, so that encoding a decoded expression gives back
// the very same bytes. Linkers pad relocated indices to five bytes, and a
// rewriter that keeps those widths changes nothing but what it means to
// change. An immediate whose new value no longer fits its old width is
// encoded in as many bytes as it needs.
//
// The decoder knows every instruction of WebAssembly 2.0 (including the
// 0xFC and 0xFD prefixed ones) and those of the threads (0xFE), tail-call,
// exception-handling and typed function reference proposals. It checks
// the encoding of instructions, not their types: validation is the
// engine's business.
package wasmcode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Kind is how an immediate is encoded.
type Kind uint8

// The immediate kinds.
const (
	// U32 is an unsigned LEB128 integer of at most 32 bits: an index, a
	// count, a memory alignment.
	U32 Kind = iota + 1
	// U64 is an unsigned LEB128 integer of at most 64 bits: a memory
	// offset (64 bits wide with memory64).
	U64
	// S32 is a signed LEB128 integer of at most 32 bits (i32.const).
	S32
	// S33 is a signed LEB128 integer of at most 33 bits: a block type or a
	// heap type, where negative values are type codes and non-negative
	// ones type indices.
	S33
	// S64 is a signed LEB128 integer of at most 64 bits (i64.const).
	S64
	// Fixed is Width raw bytes, read as a little-endian integer: a lane
	// index (1), an f32 (4), an f64 (8), half of a v128 (8), a reserved
	// zero byte.
	Fixed
)

// bits returns the width in bits of an integer kind.
func (k Kind) bits() uint {
	switch k {
	case U32, S32:
		return 32
	case S33:
		return 33
	default:
		return 64
	}
}

// Immediate is one immediate operand of an instruction.
type Immediate struct {
	// Value is the operand: an unsigned integer, the two's complement
	// bits of a signed one, or the little-endian value of Fixed bytes.
	Value uint64
	// Kind says how Value is encoded.
	Kind Kind
	// Width is the number of bytes the operand took when decoded, or 0
	// for "as few as possible". Encoding keeps it whenever Value fits.
	Width uint8
}

// Index returns an unsigned immediate as a 32-bit index.
func (im Immediate) Index() uint32 { return uint32(im.Value) }

// Signed returns the value of a signed immediate.
func (im Immediate) Signed() int64 { return int64(im.Value) }

// Uint returns an unsigned 32-bit immediate of minimal width.
func Uint(v uint32) Immediate { return Immediate{Value: uint64(v), Kind: U32} }

// BlockType returns a block type immediate of minimal width: BlockTypeEmpty,
// a value type code read as a negative number, or a type index.
func BlockType(bt int64) Immediate { return Immediate{Value: uint64(bt), Kind: S33} }

// Instruction is one decoded instruction.
//
// Imm holds the immediates in the order they are encoded. For the
// instructions that name a function (call, return_call, ref.func), Imm[0]
// is the function index; call_indirect and return_call_indirect have the
// type index in Imm[0] and the table index in Imm[1]; block, loop, if,
// try and try_table have their block type in Imm[0]. Vectors (br_table,
// typed select, try_table's catch clauses) are flattened: their length
// first, then their elements.
type Instruction struct {
	Opcode Opcode
	Imm    []Immediate
}

// New returns an instruction with the given immediates.
func New(op Opcode, imm ...Immediate) Instruction { return Instruction{Opcode: op, Imm: imm} }

// opensBlock reports whether op opens a structured block that a matching
// end (or, for try, delegate) closes.
func opensBlock(op Opcode) bool {
	switch op {
	case OpBlock, OpLoop, OpIf, OpTry, OpTryTable:
		return true
	}
	return false
}

// Walk decodes the expression at the start of code, calling fn with the
// byte offset and the decoding of each instruction in turn, up to and
// including the end that closes the expression (a function body, or a
// constant expression). It returns how many bytes the expression took.
//
// The Instruction passed to fn, and its Imm, are reused for the next
// instruction: fn must copy what it keeps.
func Walk(code []byte, fn func(offset int, in *Instruction) error) (int, error) {
	d := decoder{code: code}
	var in Instruction
	depth := 1
	for depth > 0 {
		offset := d.pos
		in.Imm = in.Imm[:0]
		if err := d.instruction(&in); err != nil {
			return 0, fmt.Errorf("offset %d: %w", offset, err)
		}
		switch {
		case opensBlock(in.Opcode):
			depth++
		case in.Opcode == OpEnd, in.Opcode == OpDelegate:
			depth--
		}
		if err := fn(offset, &in); err != nil {
			return 0, err
		}
	}
	return d.pos, nil
}

// Decode decodes the expression at the start of code like Walk and
// returns its instructions and the number of bytes it took.
func Decode(code []byte) ([]Instruction, int, error) {
	var (
		insts []Instruction
		arena []Immediate
	)
	n, err := Walk(code, func(_ int, in *Instruction) error {
		start := len(arena)
		arena = append(arena, in.Imm...)
		// A full slice expression, so that appending to one
		// instruction's immediates can never overwrite the next one's.
		insts = append(insts, Instruction{Opcode: in.Opcode, Imm: arena[start:len(arena):len(arena)]})
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return insts, n, nil
}

// DecodeBody decodes a function body: an expression that must take all of
// body.
func DecodeBody(body []byte) ([]Instruction, error) {
	insts, n, err := Decode(body)
	if err != nil {
		return nil, err
	}
	if n != len(body) {
		return nil, fmt.Errorf("%d bytes after the end of the function body", len(body)-n)
	}
	return insts, nil
}

// Append appends the encoding of the instructions to dst.
func Append(dst []byte, insts ...Instruction) []byte {
	for i := range insts {
		dst = insts[i].Append(dst)
	}
	return dst
}

// Append appends the encoding of the instruction to dst.
func (in Instruction) Append(dst []byte) []byte {
	if p := in.Opcode.Prefix(); p != 0 {
		dst = append(dst, p)
		dst = appendUnsigned(dst, uint64(in.Opcode.Sub()), unsignedWidth(uint64(in.Opcode.Sub())))
	} else {
		dst = append(dst, byte(in.Opcode))
	}
	for _, im := range in.Imm {
		dst = im.append(dst)
	}
	return dst
}

// append appends the encoding of the immediate to dst, in its recorded
// width when the value fits in it.
func (im Immediate) append(dst []byte) []byte {
	w := int(im.Width)
	switch im.Kind {
	case Fixed:
		for i := 0; i < w; i++ {
			dst = append(dst, byte(im.Value>>(8*i)))
		}
		return dst
	case U32, U64:
		if min := unsignedWidth(im.Value); w < min {
			w = min
		}
		return appendUnsigned(dst, im.Value, w)
	default:
		v := int64(im.Value)
		if min := signedWidth(v); w < min {
			w = min
		}
		return appendSigned(dst, v, w)
	}
}

// decoder reads instructions from code.
type decoder struct {
	code []byte
	pos  int
}

// errUnknown is returned for a byte that starts no instruction this
// package knows.
var errUnknown = errors.New("unknown opcode")

// byte reads one byte.
func (d *decoder) byte() (byte, error) {
	if d.pos >= len(d.code) {
		return 0, errTruncated
	}
	b := d.code[d.pos]
	d.pos++
	return b, nil
}

// imm reads one immediate of the given kind onto in.Imm; width is used
// by Fixed immediates only.
func (d *decoder) imm(in *Instruction, kind Kind, width int) error {
	var (
		v   uint64
		n   int
		err error
	)
	switch kind {
	case Fixed:
		if len(d.code)-d.pos < width {
			return errTruncated
		}
		for i := width - 1; i >= 0; i-- {
			v = v<<8 | uint64(d.code[d.pos+i])
		}
		n = width
	case U32, U64:
		v, n, err = readUnsigned(d.code[d.pos:], kind.bits())
	default:
		var s int64
		s, n, err = readSigned(d.code[d.pos:], kind.bits())
		v = uint64(s)
	}
	if err != nil {
		return err
	}
	d.pos += n
	in.Imm = append(in.Imm, Immediate{Value: v, Kind: kind, Width: uint8(n)})
	return nil
}

// imms reads immediates of the given kinds in order.
func (d *decoder) imms(in *Instruction, kinds ...Kind) error {
	for _, k := range kinds {
		if err := d.imm(in, k, 0); err != nil {
			return err
		}
	}
	return nil
}

// vector reads a U32 count followed by that many elements, each read by
// elem.
func (d *decoder) vector(in *Instruction, elem func() error) error {
	if err := d.imm(in, U32, 0); err != nil {
		return err
	}
	count := in.Imm[len(in.Imm)-1].Value
	// Each element takes at least one byte: a larger count is a lie that
	// must not make us loop for long.
	if count > uint64(len(d.code)-d.pos) {
		return errTruncated
	}
	for i := uint64(0); i < count; i++ {
		if err := elem(); err != nil {
			return err
		}
	}
	return nil
}

// memarg reads a memory argument: alignment flags, the memory index when
// flag bit 6 says one follows (multi-memory), and the offset.
func (d *decoder) memarg(in *Instruction) error {
	if err := d.imm(in, U32, 0); err != nil {
		return err
	}
	if in.Imm[len(in.Imm)-1].Value&0x40 != 0 {
		if err := d.imm(in, U32, 0); err != nil {
			return err
		}
	}
	return d.imm(in, U64, 0)
}

// instruction decodes the instruction at d.pos into in.
func (d *decoder) instruction(in *Instruction) error {
	b, err := d.byte()
	if err != nil {
		return err
	}
	op := Opcode(b)
	switch b {
	case PrefixMisc, PrefixVector, PrefixAtomic:
		sub, n, err := readUnsigned(d.code[d.pos:], 32)
		if err != nil {
			return fmt.Errorf("sub-opcode after 0x%02X: %w", b, err)
		}
		if n != unsignedWidth(sub) || sub > 0xFFFF {
			// A padded sub-opcode would not survive a round trip.
			return fmt.Errorf("%w: 0x%02X %d encoded in %d bytes", errUnknown, b, sub, n)
		}
		d.pos += n
		op = Prefixed(b, uint32(sub))
	}
	in.Opcode = op
	if err := d.immediates(in); err != nil {
		return fmt.Errorf("%v: %w", op, err)
	}
	return nil
}

// immediates decodes the immediates of in.Opcode.
func (d *decoder) immediates(in *Instruction) error {
	op := in.Opcode
	switch op.Prefix() {
	case PrefixMisc:
		return d.misc(in)
	case PrefixVector:
		return d.vec(in)
	case PrefixAtomic:
		return d.atomic(in)
	}
	switch {
	case op == OpUnreachable, op == OpNop, op == OpElse, op == OpEnd,
		op == OpReturn, op == OpDrop, op == OpSelect, op == OpCatchAll,
		op == OpThrowRef, op == OpRefIsNull, op == OpRefAsNonNull:
		return nil
	case op == OpBlock, op == OpLoop, op == OpIf, op == OpTry:
		return d.imm(in, S33, 0)
	case op == OpBr, op == OpBrIf, op == OpRethrow, op == OpDelegate,
		op == OpBrOnNull, op == OpBrOnNonNull:
		return d.imm(in, U32, 0)
	case op == OpCatch, op == OpThrow:
		return d.imm(in, U32, 0) // tag index
	case op == OpBrTable:
		if err := d.vector(in, func() error { return d.imm(in, U32, 0) }); err != nil {
			return err
		}
		return d.imm(in, U32, 0) // default label
	case op == OpCall, op == OpReturnCall, op == OpRefFunc:
		return d.imm(in, U32, 0) // function index
	case op == OpCallIndirect, op == OpReturnCallIndirect:
		return d.imms(in, U32, U32) // type index, table index
	case op == OpCallRef, op == OpReturnCallRef:
		return d.imm(in, U32, 0) // type index
	case op == OpSelectTyped:
		return d.vector(in, func() error { return d.valueType(in) })
	case op == OpTryTable:
		if err := d.imm(in, S33, 0); err != nil {
			return err
		}
		return d.vector(in, func() error { return d.catchClause(in) })
	case op >= OpLocalGet && op <= OpTableSet:
		return d.imm(in, U32, 0) // local, global or table index
	case op >= 0x28 && op <= 0x3E: // loads and stores
		return d.memarg(in)
	case op == OpMemorySize, op == OpMemoryGrow:
		return d.imm(in, U32, 0) // memory index
	case op == OpI32Const:
		return d.imm(in, S32, 0)
	case op == OpI64Const:
		return d.imm(in, S64, 0)
	case op == OpF32Const:
		return d.imm(in, Fixed, 4)
	case op == OpF64Const:
		return d.imm(in, Fixed, 8)
	case op >= 0x45 && op <= OpI64Extend32S: // numeric, no immediates
		return nil
	case op == OpRefNull:
		return d.imm(in, S33, 0) // heap type
	}
	return errUnknown
}

// valueType reads a value type of a typed select. Only the one-byte
// types are known: i32, i64, f32, f64, v128, funcref and externref.
func (d *decoder) valueType(in *Instruction) error {
	if err := d.imm(in, Fixed, 1); err != nil {
		return err
	}
	switch in.Imm[len(in.Imm)-1].Value {
	case 0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F:
		return nil
	}
	return fmt.Errorf("%w: value type 0x%02X", errUnknown, in.Imm[len(in.Imm)-1].Value)
}

// catchClause reads one catch clause of try_table: its kind, a tag index
// for catch and catch_ref, and the label to branch to.
func (d *decoder) catchClause(in *Instruction) error {
	if err := d.imm(in, Fixed, 1); err != nil {
		return err
	}
	switch in.Imm[len(in.Imm)-1].Value {
	case 0x00, 0x01: // catch, catch_ref
		return d.imms(in, U32, U32)
	case 0x02, 0x03: // catch_all, catch_all_ref
		return d.imm(in, U32, 0)
	}
	return fmt.Errorf("%w: catch clause kind 0x%02X", errUnknown, in.Imm[len(in.Imm)-1].Value)
}

// misc decodes the immediates of a 0xFC instruction.
func (d *decoder) misc(in *Instruction) error {
	switch sub := in.Opcode.Sub(); {
	case sub <= 7: // saturating truncations
		return nil
	case in.Opcode == OpMemoryInit:
		return d.imms(in, U32, U32) // data index, memory index
	case in.Opcode == OpDataDrop, in.Opcode == OpElemDrop:
		return d.imm(in, U32, 0)
	case in.Opcode == OpMemoryCopy:
		return d.imms(in, U32, U32) // destination and source memory
	case in.Opcode == OpMemoryFill:
		return d.imm(in, U32, 0)
	case in.Opcode == OpTableInit:
		return d.imms(in, U32, U32) // element index, table index
	case in.Opcode == OpTableCopy:
		return d.imms(in, U32, U32) // destination and source table
	case in.Opcode == OpTableGrow, in.Opcode == OpTableSize, in.Opcode == OpTableFill:
		return d.imm(in, U32, 0)
	}
	return errUnknown
}

// vec decodes the immediates of a 0xFD (SIMD) instruction.
func (d *decoder) vec(in *Instruction) error {
	switch sub := in.Opcode.Sub(); {
	case sub <= 0x0B, sub == 0x5C, sub == 0x5D: // loads, store, load_zero
		return d.memarg(in)
	case sub == 0x0C, sub == 0x0D: // v128.const, i8x16.shuffle
		if err := d.imm(in, Fixed, 8); err != nil {
			return err
		}
		return d.imm(in, Fixed, 8)
	case sub >= 0x15 && sub <= 0x22: // extract_lane, replace_lane
		return d.imm(in, Fixed, 1)
	case sub >= 0x54 && sub <= 0x5B: // load_lane, store_lane
		if err := d.memarg(in); err != nil {
			return err
		}
		return d.imm(in, Fixed, 1)
	case sub <= 0xFF:
		// Every other SIMD instruction has no immediate; the holes in
		// the opcode space are not instructions.
		if isVectorHole(sub) {
			return errUnknown
		}
		return nil
	case sub >= 0x100 && sub <= 0x113: // relaxed SIMD
		return nil
	}
	return errUnknown
}

// isVectorHole reports whether a one-byte SIMD sub-opcode is unassigned.
func isVectorHole(sub uint32) bool {
	switch sub {
	case 0x9A, 0xA2, 0xA5, 0xA6, 0xAF, 0xB0, 0xB2, 0xB3, 0xB4, 0xBB,
		0xC2, 0xC5, 0xC6, 0xCF, 0xD0, 0xD2, 0xD3, 0xD4, 0xE2, 0xEE:
		return true
	}
	return false
}

// atomic decodes the immediates of a 0xFE (threads) instruction.
func (d *decoder) atomic(in *Instruction) error {
	switch sub := in.Opcode.Sub(); {
	case sub <= 0x02, sub >= 0x10 && sub <= 0x4E: // notify, wait, loads, stores, rmw
		return d.memarg(in)
	case sub == 0x03: // atomic.fence
		return d.imm(in, Fixed, 1)
	}
	return errUnknown
}

// Float32 returns the value of an f32.const immediate.
func Float32(im Immediate) float32 { return math.Float32frombits(uint32(im.Value)) }

// Float64 returns the value of an f64.const immediate.
func Float64(im Immediate) float64 { return math.Float64frombits(im.Value) }

// V128 returns the 16 bytes of a v128.const or i8x16.shuffle, whose
// halves are Imm[0] and Imm[1].
func V128(in *Instruction) (b [16]byte) {
	binary.LittleEndian.PutUint64(b[:8], in.Imm[0].Value)
	binary.LittleEndian.PutUint64(b[8:], in.Imm[1].Value)
	return b
}
