package prepare

import (
	"bytes"
	"testing"

	"github.com/tetratelabs/wabin/wasm"

	"github.com/podctl/podctl/wasm/internal/wasmcode"
)

// TestWalkerRoundTrip decodes every function body of real modules, a C
// one linked by lld without optimization (whose relocated indices are
// padded to five bytes), the same optimized, and a Go one, encodes the
// instructions again and checks that the bytes are the same.
func TestWalkerRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		build  func(testing.TB) []byte
		padded bool // whether the module must have padded immediates
	}{
		{"c -O0", func(t testing.TB) []byte { return buildC(t, "guest", "-O0") }, true},
		{"c -O2", func(t testing.TB) []byte { return buildC(t, "guest", "-O2") }, false},
		{"go", buildGo, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			module := tc.build(t)
			sections, err := splitSections(module)
			if err != nil {
				t.Fatal(err)
			}
			codes, err := splitCode(findSection(sections, wasm.SectionIDCode))
			if err != nil {
				t.Fatal(err)
			}
			var instructions, padded int
			seen := make(map[wasmcode.Opcode]bool)
			for i, c := range codes {
				insts, err := wasmcode.DecodeBody(c.body)
				if err != nil {
					t.Fatalf("function body %d: %v", i, err)
				}
				if got := wasmcode.Append(nil, insts...); !bytes.Equal(got, c.body) {
					at := 0
					for at < len(got) && at < len(c.body) && got[at] == c.body[at] {
						at++
					}
					t.Fatalf("function body %d (%d bytes) differs from offset %d after a round trip", i, len(c.body), at)
				}
				instructions += len(insts)
				for _, in := range insts {
					seen[in.Opcode] = true
					for _, im := range in.Imm {
						if im.Kind == wasmcode.U32 && int(im.Width) > len(appendU32(nil, im.Index())) {
							padded++
						}
					}
				}
			}
			t.Logf("%d function bodies, %d instructions, %d distinct opcodes, %d padded immediates", len(codes), instructions, len(seen), padded)
			if tc.padded && padded == 0 {
				t.Error("no padded immediate: the width-keeping path went untested")
			}
		})
	}
}
