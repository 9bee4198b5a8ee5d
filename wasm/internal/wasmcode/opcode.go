package wasmcode

import "fmt"

// Opcode identifies an instruction. A one-byte opcode is its own value; a
// prefixed opcode (0xFC misc, 0xFD vector, 0xFE atomic) is the prefix
// shifted left by 16 bits, or-ed with its LEB128-encoded sub-opcode, so
// that i32.trunc_sat_f32_s (0xFC 0) is 0xFC0000.
type Opcode uint32

// Prefix bytes that introduce a sub-opcode.
const (
	PrefixMisc   byte = 0xFC // saturating truncation, bulk memory, table
	PrefixVector byte = 0xFD // SIMD
	PrefixAtomic byte = 0xFE // threads
)

// Prefixed returns the opcode of prefix followed by sub-opcode sub.
func Prefixed(prefix byte, sub uint32) Opcode { return Opcode(prefix)<<16 | Opcode(sub) }

// Prefix returns the opcode's prefix byte, or 0 when it has none.
func (o Opcode) Prefix() byte { return byte(o >> 16) }

// Sub returns the sub-opcode of a prefixed opcode, or the single opcode
// byte of an unprefixed one.
func (o Opcode) Sub() uint32 { return uint32(o & 0xFFFF) }

// String returns the opcode in hexadecimal, as the binary format spells it.
func (o Opcode) String() string {
	if p := o.Prefix(); p != 0 {
		return fmt.Sprintf("0x%02X %d", p, o.Sub())
	}
	return fmt.Sprintf("0x%02X", uint32(o))
}

// Opcodes the rest of the package, or its users, refer to by name. The
// decoder knows every opcode of WebAssembly 2.0 plus the threads,
// tail-call, exception-handling and typed function reference proposals.
const (
	OpUnreachable        Opcode = 0x00
	OpNop                Opcode = 0x01
	OpBlock              Opcode = 0x02
	OpLoop               Opcode = 0x03
	OpIf                 Opcode = 0x04
	OpElse               Opcode = 0x05
	OpTry                Opcode = 0x06
	OpCatch              Opcode = 0x07
	OpThrow              Opcode = 0x08
	OpRethrow            Opcode = 0x09
	OpThrowRef           Opcode = 0x0A
	OpEnd                Opcode = 0x0B
	OpBr                 Opcode = 0x0C
	OpBrIf               Opcode = 0x0D
	OpBrTable            Opcode = 0x0E
	OpReturn             Opcode = 0x0F
	OpCall               Opcode = 0x10
	OpCallIndirect       Opcode = 0x11
	OpReturnCall         Opcode = 0x12
	OpReturnCallIndirect Opcode = 0x13
	OpCallRef            Opcode = 0x14
	OpReturnCallRef      Opcode = 0x15
	OpDelegate           Opcode = 0x18
	OpCatchAll           Opcode = 0x19
	OpDrop               Opcode = 0x1A
	OpSelect             Opcode = 0x1B
	OpSelectTyped        Opcode = 0x1C
	OpTryTable           Opcode = 0x1F
	OpLocalGet           Opcode = 0x20
	OpLocalSet           Opcode = 0x21
	OpLocalTee           Opcode = 0x22
	OpGlobalGet          Opcode = 0x23
	OpGlobalSet          Opcode = 0x24
	OpTableGet           Opcode = 0x25
	OpTableSet           Opcode = 0x26
	OpMemorySize         Opcode = 0x3F
	OpMemoryGrow         Opcode = 0x40
	OpI32Const           Opcode = 0x41
	OpI64Const           Opcode = 0x42
	OpF32Const           Opcode = 0x43
	OpF64Const           Opcode = 0x44
	OpI32Eq              Opcode = 0x46
	OpI32Extend8S        Opcode = 0xC0
	OpI64Extend32S       Opcode = 0xC4
	OpRefNull            Opcode = 0xD0
	OpRefIsNull          Opcode = 0xD1
	OpRefFunc            Opcode = 0xD2
	OpRefAsNonNull       Opcode = 0xD4
	OpBrOnNull           Opcode = 0xD5
	OpBrOnNonNull        Opcode = 0xD6

	// The first eight 0xFC sub-opcodes are the saturating truncations;
	// the rest are bulk memory and table instructions.
	OpI32TruncSatF32S Opcode = 0xFC0000
	OpI64TruncSatF64U Opcode = 0xFC0007
	OpMemoryInit      Opcode = 0xFC0008
	OpDataDrop        Opcode = 0xFC0009
	OpMemoryCopy      Opcode = 0xFC000A
	OpMemoryFill      Opcode = 0xFC000B
	OpTableInit       Opcode = 0xFC000C
	OpElemDrop        Opcode = 0xFC000D
	OpTableCopy       Opcode = 0xFC000E
	OpTableGrow       Opcode = 0xFC000F
	OpTableSize       Opcode = 0xFC0010
	OpTableFill       Opcode = 0xFC0011
)

// BlockTypeEmpty is the block type of a block with neither parameters nor
// results, as the signed immediate of block, loop and if holds it (the
// byte 0x40 read as a signed LEB128).
const BlockTypeEmpty = -0x40
