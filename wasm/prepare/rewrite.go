package prepare

import (
	"fmt"
)

// rewriteElements rewrites an element section with every function index
// in it (in index vectors and in ref.func expressions) passed through
// remap, and reports each index (before remapping) to refs. remap may be
// nil to only read the section. The binary format has eight encodings of
// a segment, told apart by the flags that start it:
//
//	bit 0: passive or declarative (else active)
//	bit 1: with bit 0, declarative; without, active with a table index
//	bit 2: elements are expressions (else function indices) and the
//	       type is a reference type (else an element kind byte)
func rewriteElements(payload []byte, remap func(uint32) uint32, refs func(uint32)) ([]byte, error) {
	r := reader{b: payload}
	count, err := r.count()
	if err != nil {
		return nil, err
	}
	out := appendU32(make([]byte, 0, len(payload)+16), count)
	for i := uint32(0); i < count; i++ {
		if out, err = rewriteElement(&r, out, remap, refs); err != nil {
			return nil, fmt.Errorf("element segment %d: %w", i, err)
		}
	}
	if !r.done() {
		return nil, fmt.Errorf("%d bytes after the last element segment", len(r.b)-r.pos)
	}
	return out, nil
}

// rewriteElement rewrites one element segment; see rewriteElements.
func rewriteElement(r *reader, out []byte, remap func(uint32) uint32, refs func(uint32)) ([]byte, error) {
	flags, err := r.u32()
	if err != nil {
		return nil, err
	}
	if flags > 7 {
		return nil, fmt.Errorf("invalid flags %d", flags)
	}
	out = appendU32(out, flags)
	if flags&3 == 2 { // active with a table index
		table, err := r.u32()
		if err != nil {
			return nil, err
		}
		out = appendU32(out, table)
	}
	if flags&1 == 0 { // active: the offset
		if out, err = r.expr(out, nil, nil); err != nil {
			return nil, fmt.Errorf("offset: %w", err)
		}
	}
	if flags&3 != 0 { // an element kind or reference type byte
		b, err := r.byte()
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	n, err := r.count()
	if err != nil {
		return nil, err
	}
	out = appendU32(out, n)
	for j := uint32(0); j < n; j++ {
		if flags&4 != 0 {
			if out, err = r.expr(out, remap, refs); err != nil {
				return nil, err
			}
			continue
		}
		f, err := r.u32()
		if err != nil {
			return nil, err
		}
		if refs != nil {
			refs(f)
		}
		if remap != nil {
			f = remap(f)
		}
		out = appendU32(out, f)
	}
	return out, nil
}

// rewriteGlobals rewrites a global section with the function index of
// every ref.func in an initializer passed through remap (reporting it to
// refs first), and appends the extra globals, already encoded.
func rewriteGlobals(payload []byte, remap func(uint32) uint32, refs func(uint32), extra ...[]byte) ([]byte, error) {
	r := reader{b: payload}
	var count uint32
	if payload != nil {
		var err error
		if count, err = r.count(); err != nil {
			return nil, err
		}
	}
	out := appendU32(make([]byte, 0, len(payload)+16), count+uint32(len(extra)))
	for i := uint32(0); i < count; i++ {
		// A global type is a value type and a mutability byte.
		if r.pos+2 > len(r.b) {
			return nil, errTruncated
		}
		vt := r.b[r.pos]
		if vt < 0x6F || vt > 0x7F {
			return nil, fmt.Errorf("global %d: unsupported value type 0x%02X", i, vt)
		}
		out = append(out, r.b[r.pos:r.pos+2]...)
		r.pos += 2
		var err error
		if out, err = r.expr(out, remap, refs); err != nil {
			return nil, fmt.Errorf("global %d: %w", i, err)
		}
	}
	if !r.done() {
		return nil, fmt.Errorf("%d bytes after the last global", len(r.b)-r.pos)
	}
	for _, g := range extra {
		out = append(out, g...)
	}
	return out, nil
}

// code is one entry of the code section, undecoded.
type code struct {
	locals []byte // the vector of local declarations, as encoded
	body   []byte // the expression, ending with end
}

// splitCode splits a code section into its entries.
func splitCode(payload []byte) ([]code, error) {
	r := reader{b: payload}
	count, err := r.count()
	if err != nil {
		return nil, err
	}
	codes := make([]code, count)
	for i := range codes {
		entry, err := r.bytes()
		if err != nil {
			return nil, fmt.Errorf("code %d: %w", i, err)
		}
		er := reader{b: entry}
		groups, err := er.count()
		if err != nil {
			return nil, fmt.Errorf("code %d locals: %w", i, err)
		}
		for j := uint32(0); j < groups; j++ {
			if _, err := er.u32(); err != nil {
				return nil, fmt.Errorf("code %d locals: %w", i, err)
			}
			if _, err := er.byte(); err != nil {
				return nil, fmt.Errorf("code %d locals: %w", i, err)
			}
		}
		codes[i] = code{locals: entry[:er.pos], body: entry[er.pos:]}
	}
	if !r.done() {
		return nil, fmt.Errorf("%d bytes after the last code entry", len(r.b)-r.pos)
	}
	return codes, nil
}

// Subsections of the "name" custom section that are keyed by function
// index.
const (
	nameSubFunctions = 1 // name map: function -> name
	nameSubLocals    = 2 // indirect name map: function -> local -> name
	nameSubLabels    = 3 // indirect name map: function -> label -> name
)

// rewriteNames rewrites the contents of a "name" custom section (after
// its name) for a new function at index added, named addedName: every
// function index passes through remap, and the new function gets its
// name in the function names subsection, in index order. Other
// subsections are copied as they are: none of them refers to functions.
func rewriteNames(contents []byte, remap func(uint32) uint32, added uint32, addedName string) ([]byte, error) {
	r := reader{b: contents}
	out := make([]byte, 0, len(contents)+len(addedName)+8)
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		sub, err := r.bytes()
		if err != nil {
			return nil, fmt.Errorf("subsection %d: %w", id, err)
		}
		switch id {
		case nameSubFunctions, nameSubLocals, nameSubLabels:
			if sub, err = rewriteNameMap(sub, id != nameSubFunctions, remap, added, addedName); err != nil {
				return nil, fmt.Errorf("subsection %d: %w", id, err)
			}
		}
		out = append(out, id)
		out = appendU32(out, uint32(len(sub)))
		out = append(out, sub...)
	}
	return out, nil
}

// rewriteNameMap rewrites a name map (or, when indirect, an indirect
// name map) keyed by function index; see rewriteNames. A direct map gets
// an entry for the added function.
func rewriteNameMap(sub []byte, indirect bool, remap func(uint32) uint32, added uint32, addedName string) ([]byte, error) {
	r := reader{b: sub}
	count, err := r.count()
	if err != nil {
		return nil, err
	}
	var entries []byte
	inserted := indirect // indirect maps get no entry
	for i := uint32(0); i < count; i++ {
		f, err := r.u32()
		if err != nil {
			return nil, err
		}
		start := r.pos
		if indirect {
			n, err := r.count()
			if err != nil {
				return nil, err
			}
			for j := uint32(0); j < n; j++ {
				if _, err := r.u32(); err != nil {
					return nil, err
				}
				if _, err := r.bytes(); err != nil {
					return nil, err
				}
			}
		} else if _, err := r.bytes(); err != nil {
			return nil, err
		}
		f = remap(f)
		if !inserted && f > added {
			entries = appendName(appendU32(entries, added), addedName)
			inserted = true
		}
		entries = appendU32(entries, f)
		entries = append(entries, r.b[start:r.pos]...)
	}
	if !r.done() {
		return nil, fmt.Errorf("%d bytes after the last entry", len(r.b)-r.pos)
	}
	if !inserted {
		entries = appendName(appendU32(entries, added), addedName)
	}
	if !indirect {
		count++
	}
	return append(appendU32(nil, count), entries...), nil
}
