package wasmcode

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func TestLEB128(t *testing.T) {
	for _, tc := range []struct {
		name   string
		b      []byte
		bits   uint
		signed bool
		want   int64
		n      int
		err    error
	}{
		{"u32 zero", []byte{0x00}, 32, false, 0, 1, nil},
		{"u32 padded zero", []byte{0x80, 0x80, 0x80, 0x80, 0x00}, 32, false, 0, 5, nil},
		{"u32 max", []byte{0xFF, 0xFF, 0xFF, 0xFF, 0x0F}, 32, false, math.MaxUint32, 5, nil},
		{"u32 too long", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 32, false, 0, 0, errOverlong},
		{"u32 unused bits", []byte{0xFF, 0xFF, 0xFF, 0xFF, 0x1F}, 32, false, 0, 0, errUnused},
		{"u32 truncated", []byte{0x80}, 32, false, 0, 0, errTruncated},
		{"s32 minus one", []byte{0x7F}, 32, true, -1, 1, nil},
		{"s32 padded minus one", []byte{0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, 32, true, -1, 5, nil},
		{"s32 min", []byte{0x80, 0x80, 0x80, 0x80, 0x78}, 32, true, math.MinInt32, 5, nil},
		{"s32 bad sign extension", []byte{0xFF, 0xFF, 0xFF, 0xFF, 0x4F}, 32, true, 0, 0, errUnused},
		{"s33 block type", []byte{0x40}, 33, true, BlockTypeEmpty, 1, nil},
		{"s33 type index", []byte{0x80, 0x01}, 33, true, 128, 2, nil},
		{"s64 min", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7F}, 64, true, math.MinInt64, 10, nil},
		{"s64 bad last byte", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x3F}, 64, true, 0, 0, errUnused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				got int64
				n   int
				err error
			)
			if tc.signed {
				got, n, err = readSigned(tc.b, tc.bits)
			} else {
				var u uint64
				u, n, err = readUnsigned(tc.b, tc.bits)
				got = int64(u)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if got != tc.want || n != tc.n {
				t.Fatalf("got %d in %d bytes, want %d in %d", got, n, tc.want, tc.n)
			}
			// Encoding in the same width gives the same bytes.
			var enc []byte
			if tc.signed {
				enc = appendSigned(nil, got, n)
			} else {
				enc = appendUnsigned(nil, uint64(got), n)
			}
			if !bytes.Equal(enc, tc.b) {
				t.Fatalf("re-encoded as % x, want % x", enc, tc.b)
			}
		})
	}
}

// code assembles an expression from byte strings.
func code(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []byte
		ops  int // instructions, the final end included
	}{
		{"empty", []byte{0x0B}, 1},
		{"constants", code(
			[]byte{0x41, 0x7F}, // i32.const -1
			[]byte{0x42, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7F}, // i64.const min
			[]byte{0x43, 0x00, 0x00, 0x80, 0x3F},                                     // f32.const 1
			[]byte{0x44, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F},                               // f64.const 1
			[]byte{0x1A, 0x1A, 0x1A, 0x1A, 0x0B}), 9},
		{"padded call and global", code(
			[]byte{0x10, 0x85, 0x80, 0x80, 0x80, 0x00}, // call 5, padded as lld does
			[]byte{0x23, 0x80, 0x80, 0x80, 0x80, 0x00}, // global.get 0, padded
			[]byte{0x1A, 0x1A, 0x0B}), 5},
		{"blocks and branches", code(
			[]byte{0x02, 0x40}, // block
			[]byte{0x03, 0x7F}, // loop (result i32)
			[]byte{0x41, 0x01, 0x04, 0x40, 0x0C, 0x01, 0x05, 0x0C, 0x00, 0x0B}, // if br 1 else br 0 end
			[]byte{0x41, 0x00, 0x0E, 0x02, 0x00, 0x01, 0x02},                   // br_table 0 1 2
			[]byte{0x0B, 0x0B, 0x0B}), 13},
		{"memory", code(
			[]byte{0x41, 0x00, 0x28, 0x02, 0x90, 0x4E}, // i32.load align=4 offset=10000
			[]byte{0x3F, 0x00, 0x40, 0x00, 0x1A, 0x1A}, // memory.size memory.grow drop drop
			[]byte{0x0B}), 7},
		{"calls and references", code(
			[]byte{0x11, 0x03, 0x00},       // call_indirect type 3 table 0
			[]byte{0x12, 0x02},             // return_call 2
			[]byte{0x13, 0x01, 0x01},       // return_call_indirect type 1 table 1
			[]byte{0xD2, 0x07, 0xD1, 0x1A}, // ref.func 7, ref.is_null, drop
			[]byte{0xD0, 0x70, 0x1A},       // ref.null func, drop
			[]byte{0x1C, 0x01, 0x7F},       // select (result i32)
			[]byte{0x0B}), 10},
		{"misc prefix", code(
			[]byte{0xFC, 0x00},             // i32.trunc_sat_f32_s
			[]byte{0xFC, 0x08, 0x01, 0x00}, // memory.init 1 0
			[]byte{0xFC, 0x0A, 0x00, 0x00}, // memory.copy
			[]byte{0xFC, 0x0B, 0x00},       // memory.fill
			[]byte{0xFC, 0x0C, 0x02, 0x00}, // table.init 2 0
			[]byte{0xFC, 0x11, 0x00},       // table.fill 0
			[]byte{0x0B}), 7},
		{"vector prefix", code(
			[]byte{0xFD, 0x00, 0x04, 0x00},                                // v128.load
			append([]byte{0xFD, 0x0C}, bytes.Repeat([]byte{0xAB}, 16)...), // v128.const
			append([]byte{0xFD, 0x0D}, bytes.Repeat([]byte{0x01}, 16)...), // i8x16.shuffle
			[]byte{0xFD, 0x15, 0x03},                                      // i8x16.extract_lane_s 3
			[]byte{0xFD, 0x54, 0x00, 0x00, 0x01},                          // v128.load8_lane
			[]byte{0xFD, 0xAE, 0x01},                                      // i32x4.add (two-byte sub-opcode)
			[]byte{0xFD, 0x80, 0x02},                                      // i8x16.relaxed_swizzle
			[]byte{0x0B}), 8},
		{"atomic prefix", code(
			[]byte{0xFE, 0x00, 0x02, 0x00}, // memory.atomic.notify
			[]byte{0xFE, 0x03, 0x00},       // atomic.fence
			[]byte{0xFE, 0x1E, 0x02, 0x08}, // i32.atomic.rmw.add offset=8
			[]byte{0x0B}), 4},
		{"multi-memory memarg", code(
			[]byte{0x28, 0x42, 0x01, 0x08}, // i32.load memory 1 offset=8
			[]byte{0x0B}), 2},
		{"exceptions", code(
			[]byte{0x06, 0x40, 0x08, 0x00, 0x07, 0x00, 0x19, 0x0B},       // try throw 0 catch 0 catch_all end
			[]byte{0x06, 0x40, 0x18, 0x00},                               // try delegate 0
			[]byte{0x1F, 0x40, 0x02, 0x00, 0x01, 0x00, 0x02, 0x00, 0x0B}, // try_table (catch 1 0) (catch_all 0) end
			[]byte{0x0B}), 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			insts, n, err := Decode(tc.code)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(tc.code) || len(insts) != tc.ops {
				t.Fatalf("decoded %d instructions from %d bytes, want %d from %d", len(insts), n, tc.ops, len(tc.code))
			}
			if got := Append(nil, insts...); !bytes.Equal(got, tc.code) {
				t.Fatalf("encoded\n% x\nwant\n% x", got, tc.code)
			}
		})
	}
}

func TestDecodeStopsAtEnd(t *testing.T) {
	// A constant expression followed by the rest of a section.
	b := []byte{0x41, 0x2A, 0x0B, 0xFF, 0xFF}
	insts, n, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 || len(insts) != 2 || insts[0].Imm[0].Signed() != 42 {
		t.Fatalf("got %d instructions in %d bytes: %+v", len(insts), n, insts)
	}
	if _, err := DecodeBody(b); err == nil {
		t.Fatal("DecodeBody accepted bytes after the end")
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []byte
	}{
		{"no end", []byte{0x01, 0x01}},
		{"unknown opcode", []byte{0x27, 0x0B}},
		{"unknown misc", []byte{0xFC, 0x12, 0x0B}},
		{"vector hole", []byte{0xFD, 0x9A, 0x01, 0x0B}},
		{"padded sub-opcode", []byte{0xFC, 0x80, 0x00, 0x0B}},
		{"gc prefix", []byte{0xFB, 0x00, 0x0B}},
		{"truncated immediate", []byte{0x10, 0x80}},
		{"lying vector length", []byte{0x0E, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x0B}},
		{"bad select type", []byte{0x1C, 0x01, 0x01, 0x0B}},
		{"unclosed block", []byte{0x02, 0x40, 0x0B}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if insts, _, err := Decode(tc.code); err == nil {
				t.Fatalf("decoded %+v without error", insts)
			}
		})
	}
}

func TestWidthGrowsWhenNeeded(t *testing.T) {
	insts, _, err := Decode([]byte{0x10, 0x7F, 0x0B}) // call 127
	if err != nil {
		t.Fatal(err)
	}
	insts[0].Imm[0].Value++
	if got, want := Append(nil, insts...), []byte{0x10, 0x80, 0x01, 0x0B}; !bytes.Equal(got, want) {
		t.Fatalf("call 128 encoded as % x, want % x", got, want)
	}
	// A padded immediate keeps its width.
	insts, _, err = Decode([]byte{0x10, 0xFF, 0x80, 0x80, 0x80, 0x00, 0x0B})
	if err != nil {
		t.Fatal(err)
	}
	insts[0].Imm[0].Value++
	if got, want := Append(nil, insts...), []byte{0x10, 0x80, 0x81, 0x80, 0x80, 0x00, 0x0B}; !bytes.Equal(got, want) {
		t.Fatalf("padded call 128 encoded as % x, want % x", got, want)
	}
}

func TestWalkOffsets(t *testing.T) {
	b := []byte{0x41, 0x01, 0x04, 0x40, 0x01, 0x0B, 0x0B}
	var offsets []int
	var ops []Opcode
	if _, err := Walk(b, func(off int, in *Instruction) error {
		offsets = append(offsets, off)
		ops = append(ops, in.Opcode)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantOffsets := []int{0, 2, 4, 5, 6}
	wantOps := []Opcode{OpI32Const, OpIf, OpNop, OpEnd, OpEnd}
	for i := range wantOps {
		if i >= len(ops) || offsets[i] != wantOffsets[i] || ops[i] != wantOps[i] {
			t.Fatalf("walked %v at %v, want %v at %v", ops, offsets, wantOps, wantOffsets)
		}
	}
	stop := errors.New("stop")
	if _, err := Walk(b, func(int, *Instruction) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Walk returned %v, want the callback's error", err)
	}
}
