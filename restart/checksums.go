package restart

import (
	"bufio"
	"encoding/hex"
	"errors"
	"io"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/podctl/podctl/checkpoint"
)

// sumsParser reads checksums.json as its bytes arrive, one JSON token at
// a time, and checks each name and checksum against the entries read
// before it. It holds at most two names at a time, the one it reads and
// the least one listed that is not in the archive: the document is
// bounded only by the entries before it (their names, escaped, can take
// six times their length), so that reading it whole would let a small,
// compressed archive of a few thousand long names make the reader
// allocate tens of MiB.
//
// It accepts the JSON encoding/json produces and reads for a Checksums,
// with field names matched exactly rather than without regard to case,
// and a field or a name listed twice refused rather than the last one
// kept.
type sumsParser struct {
	r       *Reader
	br      *bufio.Reader
	str     []byte // the last string read, unescaped
	extra   []byte // the least name listed that is not in the archive
	isExtra bool   // whether extra is set
	algo    string // the algorithm
}

// errReader keeps the error its reader fails with, other than io.EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}

// sumsBuffer is the size of the buffer checksums.json is read through.
const sumsBuffer = 16 << 10

// maxAlgorithm bounds the algorithm's name.
const maxAlgorithm = 64

// verifySums reads the size bytes of checksums.json from r.tr and checks
// it against the entries read: every entry listed, with its checksum, and
// nothing else.
func (r *Reader) verifySums(size int64) error {
	src := &errReader{r: io.LimitReader(r.tr, size)}
	p := &sumsParser{r: r, br: bufio.NewReaderSize(src, sumsBuffer)}
	jsonErr := p.document()
	if src.err != nil {
		return streamErr(src.err)
	}
	// The rest of the content (after a JSON error), to report a truncated
	// archive as such.
	if _, err := io.Copy(io.Discard, src); err != nil {
		return streamErr(err)
	}
	if err := r.checkTrailer(size); err != nil {
		return err
	}
	if jsonErr != nil {
		return jsonErr
	}
	if p.algo != checkpoint.ChecksumAlgorithm {
		return bad("%s: unsupported algorithm %q (want %q)", checkpoint.ChecksumsName, p.algo, checkpoint.ChecksumAlgorithm)
	}
	for _, name := range r.order {
		switch e := r.seen[name]; {
		case !e.listed:
			return bad("%s is missing from %s", name, checkpoint.ChecksumsName)
		case !e.matches:
			return bad("checksum mismatch for %s", name)
		}
	}
	if p.isExtra {
		return bad("%s lists %q, which is not in the archive", checkpoint.ChecksumsName, p.extra)
	}
	return nil
}

// malformed returns an error about the content of checksums.json.
func malformed(format string, args ...any) error {
	return bad("%s: "+format, append([]any{checkpoint.ChecksumsName}, args...)...)
}

// errEnd is the end of checksums.json's content.
var errEnd = errors.New("end of content")

// next returns the next byte that is not JSON whitespace.
func (p *sumsParser) next() (byte, error) {
	for {
		c, err := p.br.ReadByte()
		if err != nil {
			return 0, errEnd
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c, nil
	}
}

// afterMember reads what follows an object's member: a comma and the
// first character of the next key, or the closing brace. It returns
// errEnd at the end of the content, and a malformed error for anything
// else.
func (p *sumsParser) afterMember() (byte, error) {
	c, err := p.next()
	switch {
	case err != nil:
		return 0, err
	case c == ',':
		if c, err = p.next(); err == nil && c == '}' {
			return 0, malformed("invalid character '}' looking for beginning of object key string")
		}
		return c, err
	case c != '}':
		return 0, malformed("invalid character %q after object key:value pair", c)
	}
	return c, nil
}

// expect reads the next byte that is not whitespace, which must be want.
func (p *sumsParser) expect(want byte, where string) error {
	c, err := p.next()
	if err != nil {
		return malformed("unexpected end of JSON input")
	}
	if c != want {
		return malformed("invalid character %q %s", c, where)
	}
	return nil
}

// document reads the whole document: an object with the fields algorithm
// and entries, then nothing but whitespace.
func (p *sumsParser) document() error {
	if err := p.expect('{', "looking for beginning of value"); err != nil {
		return err
	}
	var haveAlgo, haveEntries bool
	c, err := p.next()
	for err == nil && c != '}' {
		if c != '"' {
			return malformed("invalid character %q looking for beginning of object key string", c)
		}
		if err := p.string(maxNameLen); err != nil {
			return err
		}
		if err := p.expect(':', "after object key"); err != nil {
			return err
		}
		switch field := string(p.str); field {
		case "algorithm":
			if haveAlgo {
				return malformed("field %q listed twice", field)
			}
			haveAlgo = true
			if c, err := p.next(); err != nil || c != '"' {
				return malformed("algorithm is not a string")
			}
			if err := p.string(maxAlgorithm); err != nil {
				return err
			}
			p.algo = string(p.str)
		case "entries":
			if haveEntries {
				return malformed("field %q listed twice", field)
			}
			haveEntries = true
			if err := p.entries(); err != nil {
				return err
			}
		default:
			return malformed("json: unknown field %q", field)
		}
		if c, err = p.afterMember(); err != nil && err != errEnd {
			return err
		}
	}
	if err != nil {
		return malformed("unexpected end of JSON input")
	}
	if _, err := p.next(); err != errEnd {
		return malformed("data after the JSON object")
	}
	return nil
}

// entries reads the object that maps each entry's name to its checksum,
// and records for each entry of the archive whether it is listed and
// whether its checksum matches.
func (p *sumsParser) entries() error {
	if err := p.expect('{', "looking for the entries object"); err != nil {
		return err
	}
	c, err := p.next()
	for err == nil && c != '}' {
		if c != '"' {
			return malformed("invalid character %q looking for beginning of object key string", c)
		}
		if err := p.string(maxNameLen); err != nil {
			return err
		}
		e := p.r.seen[string(p.str)]
		switch {
		case e == nil:
			if !p.isExtra || string(p.str) < string(p.extra) {
				p.extra = append(p.extra[:0], p.str...)
				p.isExtra = true
			}
		case e.listed:
			return malformed("%q listed twice", p.str)
		}
		if err := p.expect(':', "after object key"); err != nil {
			return err
		}
		if c, err := p.next(); err != nil || c != '"' {
			return malformed("the checksum of an entry is not a string")
		}
		// A checksum is 64 hex digits: anything longer is a mismatch, so
		// it only needs to be read, not kept.
		if err := p.string(maxNameLen); err != nil {
			return err
		}
		if e != nil {
			var want [2 * 32]byte
			hex.Encode(want[:], e.sum[:])
			e.listed = true
			e.matches = string(p.str) == string(want[:])
		}
		if c, err = p.afterMember(); err != nil && err != errEnd {
			return err
		}
	}
	if err != nil {
		return malformed("unexpected end of JSON input")
	}
	return nil
}

// string reads the rest of a JSON string, whose opening quote has been
// read, into p.str, unescaped as encoding/json does: invalid UTF-8 and
// lone surrogates become U+FFFD. A string longer than max bytes once
// unescaped is an error.
func (p *sumsParser) string(max int) error {
	p.str = p.str[:0]
	valid := true
	for {
		if len(p.str) > max {
			return malformed("string longer than %d bytes", max)
		}
		c, err := p.br.ReadByte()
		if err != nil {
			return malformed("unexpected end of JSON input")
		}
		switch {
		case c == '"':
			if !valid {
				p.replaceInvalid()
			}
			return nil
		case c < 0x20:
			return malformed("invalid character %q in string literal", c)
		case c >= utf8.RuneSelf:
			p.str = append(p.str, c)
			valid = false // checked at the end
			continue
		case c != '\\':
			p.str = append(p.str, c)
			continue
		}
		c, err = p.br.ReadByte()
		if err != nil {
			return malformed("unexpected end of JSON input")
		}
		switch c {
		case '"', '\\', '/':
			p.str = append(p.str, c)
		case 'b':
			p.str = append(p.str, '\b')
		case 'f':
			p.str = append(p.str, '\f')
		case 'n':
			p.str = append(p.str, '\n')
		case 'r':
			p.str = append(p.str, '\r')
		case 't':
			p.str = append(p.str, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return malformed("invalid character in \\u hexadecimal character escape")
			}
			if utf16.IsSurrogate(r) {
				// A pair only if a \u escape of the other half follows;
				// otherwise the lone half is replaced, and what follows
				// is read on its own.
				high := r
				r = unicode.ReplacementChar
				if next, err := p.br.Peek(6); err == nil && next[0] == '\\' && next[1] == 'u' {
					if low, ok := parseHex4(next[2:]); ok {
						if dec := utf16.DecodeRune(high, low); dec != unicode.ReplacementChar {
							p.br.Discard(6)
							r = dec
						}
					}
				}
			}
			p.str = utf8.AppendRune(p.str, r)
		default:
			return malformed("invalid character %q in string escape code", c)
		}
	}
}

// hex4 reads four hexadecimal digits.
func (p *sumsParser) hex4() (rune, bool) {
	var b [4]byte
	if _, err := io.ReadFull(p.br, b[:]); err != nil {
		return 0, false
	}
	return parseHex4(b[:])
}

// parseHex4 parses the four hexadecimal digits at the start of b.
func parseHex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	return r, true
}

// replaceInvalid replaces each byte of p.str that is not part of valid
// UTF-8 with U+FFFD, as encoding/json does.
func (p *sumsParser) replaceInvalid() {
	if utf8.Valid(p.str) {
		return
	}
	s := p.str
	var out []byte
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		if r == utf8.RuneError && n == 1 {
			out = utf8.AppendRune(out, unicode.ReplacementChar)
		} else {
			out = append(out, s[:n]...)
		}
		s = s[n:]
	}
	p.str = out
}
