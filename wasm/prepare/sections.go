package prepare

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/tetratelabs/wabin/binary"
	"github.com/tetratelabs/wabin/leb128"
	"github.com/tetratelabs/wabin/wasm"

	"github.com/podctl/podctl/wasm/internal/wasmcode"
)

// header is the magic number and version every module starts with.
var header = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// section is one section of a module, undecoded.
type section struct {
	id      wasm.SectionID
	payload []byte // for a custom section: its name and contents
}

// customName returns the name of a custom section and the contents that
// follow it.
func (s section) customName() (string, []byte, error) {
	r := reader{b: s.payload}
	name, err := r.name()
	if err != nil {
		return "", nil, fmt.Errorf("custom section name: %w", err)
	}
	return name, r.b[r.pos:], nil
}

// splitSections splits a module into its sections, checking only their
// framing. The contents are decoded by wabin (binary.DecodeModule) or, for
// the sections Instrument rewrites, by this package.
func splitSections(module []byte) ([]section, error) {
	if !bytes.HasPrefix(module, header) {
		return nil, errors.New("not a WebAssembly 1.0 binary module")
	}
	r := reader{b: module, pos: len(header)}
	var sections []section
	for r.pos < len(r.b) {
		id := r.b[r.pos]
		r.pos++
		payload, err := r.bytes()
		if err != nil {
			return nil, fmt.Errorf("section %s at offset %d: %w", wasm.SectionIDName(id), r.pos, err)
		}
		sections = append(sections, section{id: id, payload: payload})
	}
	return sections, nil
}

// sectionRank orders the known sections as the binary format requires
// them to appear (the tag and data count sections have ids out of order).
func sectionRank(id wasm.SectionID) int {
	switch id {
	case wasm.SectionIDType:
		return 1
	case wasm.SectionIDImport:
		return 2
	case wasm.SectionIDFunction:
		return 3
	case wasm.SectionIDTable:
		return 4
	case wasm.SectionIDMemory:
		return 5
	case sectionIDTag:
		return 6
	case wasm.SectionIDGlobal:
		return 7
	case wasm.SectionIDExport:
		return 8
	case wasm.SectionIDStart:
		return 9
	case wasm.SectionIDElement:
		return 10
	case wasm.SectionIDDataCount:
		return 11
	case wasm.SectionIDCode:
		return 12
	case wasm.SectionIDData:
		return 13
	}
	return 0
}

// sectionIDTag is the id of the tag section of the exception handling
// proposal, which wabin does not know.
const sectionIDTag wasm.SectionID = 13

// setSection replaces the payload of the section with the given id, or
// inserts the section where the binary format wants it: after the last
// known section that must precede it.
func setSection(sections []section, id wasm.SectionID, payload []byte) []section {
	at := 0
	for i, s := range sections {
		if s.id == id {
			sections[i].payload = payload
			return sections
		}
		if s.id != wasm.SectionIDCustom && sectionRank(s.id) < sectionRank(id) {
			at = i + 1
		}
	}
	sections = append(sections, section{})
	copy(sections[at+1:], sections[at:])
	sections[at] = section{id: id, payload: payload}
	return sections
}

// findSection returns the payload of the section with the given id, or
// nil.
func findSection(sections []section, id wasm.SectionID) []byte {
	for _, s := range sections {
		if s.id == id {
			return s.payload
		}
	}
	return nil
}

// joinSections encodes a module from its sections.
func joinSections(sections []section) []byte {
	n := len(header)
	for _, s := range sections {
		n += 1 + 5 + len(s.payload)
	}
	out := make([]byte, 0, n)
	out = append(out, header...)
	for _, s := range sections {
		out = append(out, s.id)
		out = appendU32(out, uint32(len(s.payload)))
		out = append(out, s.payload...)
	}
	return out
}

// appendU32 appends v in unsigned LEB128.
func appendU32(dst []byte, v uint32) []byte { return append(dst, leb128.EncodeUint32(v)...) }

// appendName appends a name: its length and its UTF-8 bytes.
func appendName(dst []byte, name string) []byte {
	dst = appendU32(dst, uint32(len(name)))
	return append(dst, name...)
}

// reader reads the parts of a section.
type reader struct {
	b   []byte
	pos int
}

// done reports whether everything has been read.
func (r *reader) done() bool { return r.pos >= len(r.b) }

// byte reads one byte.
func (r *reader) byte() (byte, error) {
	if r.pos >= len(r.b) {
		return 0, errTruncated
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

// u32 reads an unsigned LEB128 32-bit integer.
func (r *reader) u32() (uint32, error) {
	var v uint32
	for shift := uint(0); shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint32(c&0x7F) << shift
		if c&0x80 == 0 {
			if shift == 28 && c > 0x0F {
				return 0, errors.New("integer too large")
			}
			return v, nil
		}
	}
	return 0, errors.New("integer representation too long")
}

// count reads a vector length, checking it against the bytes left (each
// element takes at least one).
func (r *reader) count() (uint32, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if int(n) > len(r.b)-r.pos {
		return 0, errTruncated
	}
	return n, nil
}

// bytes reads a length-prefixed byte string.
func (r *reader) bytes() ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	if int(n) > len(r.b)-r.pos {
		return nil, errTruncated
	}
	b := r.b[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return b, nil
}

// name reads a name.
func (r *reader) name() (string, error) {
	b, err := r.bytes()
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", errors.New("name is not valid UTF-8")
	}
	return string(b), nil
}

// expr reads a constant expression, rewriting the function index of each
// ref.func with remap (when not nil) and reporting it to refs, and
// appends its encoding to dst.
func (r *reader) expr(dst []byte, remap func(uint32) uint32, refs func(uint32)) ([]byte, error) {
	n, err := wasmcode.Walk(r.b[r.pos:], func(_ int, in *wasmcode.Instruction) error {
		if in.Opcode == wasmcode.OpRefFunc {
			f := in.Imm[0].Index()
			if refs != nil {
				refs(f)
			}
			if remap != nil {
				in.Imm[0].Value = uint64(remap(f))
			}
		}
		dst = in.Append(dst)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("constant expression: %w", err)
	}
	r.pos += n
	return dst, nil
}

var errTruncated = errors.New("unexpected end of section")

// DecodeDeclarations decodes the types, imports, globals and exports of a
// module, skipping the rest: a fraction of the time a whole decode takes
// for a large module (the code is most of it). Function indices in the
// result refer to functions it does not hold.
func DecodeDeclarations(module []byte) (*wasm.Module, error) {
	sections, err := splitSections(module)
	if err != nil {
		return nil, err
	}
	kept := sections[:0:0]
	for _, s := range sections {
		switch s.id {
		case wasm.SectionIDType, wasm.SectionIDImport, wasm.SectionIDGlobal, wasm.SectionIDExport:
			kept = append(kept, s)
		}
	}
	return binary.DecodeModule(joinSections(kept), decodeFeatures)
}
