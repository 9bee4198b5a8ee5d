package wasmcode

import "errors"

var (
	errTruncated = errors.New("unexpected end of code")
	errOverlong  = errors.New("integer representation too long")
	errUnused    = errors.New("integer representation has invalid unused bits")
)

// maxBytes returns how many bytes a LEB128 encoding of a bits-wide integer
// may use at most.
func maxBytes(bits uint) int { return int((bits + 6) / 7) }

// readUnsigned decodes an unsigned LEB128 integer of the given width in
// bits from the start of b, strictly: at most maxBytes(bits) bytes, and the
// unused bits of the last byte zero.
func readUnsigned(b []byte, bits uint) (v uint64, n int, err error) {
	limit := maxBytes(bits)
	var shift uint
	for n = 0; ; n++ {
		if n == len(b) {
			return 0, 0, errTruncated
		}
		if n == limit {
			return 0, 0, errOverlong
		}
		c := b[n]
		if n == limit-1 {
			used := bits - 7*uint(limit-1)
			if c&0x80 != 0 {
				return 0, 0, errOverlong
			}
			if c>>used != 0 {
				return 0, 0, errUnused
			}
		}
		v |= uint64(c&0x7F) << shift
		shift += 7
		if c&0x80 == 0 {
			return v, n + 1, nil
		}
	}
}

// readSigned decodes a signed LEB128 integer of the given width in bits
// from the start of b, strictly: at most maxBytes(bits) bytes, and the
// unused bits of the last byte a sign extension of the value.
func readSigned(b []byte, bits uint) (v int64, n int, err error) {
	limit := maxBytes(bits)
	var shift uint
	var c byte
	for n = 0; ; n++ {
		if n == len(b) {
			return 0, 0, errTruncated
		}
		if n == limit {
			return 0, 0, errOverlong
		}
		c = b[n]
		if n == limit-1 {
			used := bits - 7*uint(limit-1)
			if c&0x80 != 0 {
				return 0, 0, errOverlong
			}
			// The bits above the value's sign bit must all copy it.
			rest := int8(c<<1) >> (used) // sign-extend from bit 6
			sign := int8(c<<(8-used)) >> 7
			if rest != sign {
				return 0, 0, errUnused
			}
		}
		v |= int64(c&0x7F) << shift
		shift += 7
		if c&0x80 == 0 {
			break
		}
	}
	if shift < 64 && c&0x40 != 0 {
		v |= -1 << shift
	}
	return v, n + 1, nil
}

// unsignedWidth returns the length of the shortest unsigned LEB128
// encoding of v.
func unsignedWidth(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// signedWidth returns the length of the shortest signed LEB128 encoding
// of v.
func signedWidth(v int64) int {
	n := 1
	for v < -0x40 || v >= 0x40 {
		v >>= 7
		n++
	}
	return n
}

// appendUnsigned appends v in unsigned LEB128 using exactly width bytes,
// padding with continuation bytes; width must be at least
// unsignedWidth(v).
func appendUnsigned(dst []byte, v uint64, width int) []byte {
	for i := 0; i < width; i++ {
		c := byte(v & 0x7F)
		v >>= 7
		if i < width-1 {
			c |= 0x80
		}
		dst = append(dst, c)
	}
	return dst
}

// appendSigned appends v in signed LEB128 using exactly width bytes,
// padding with sign-extending continuation bytes; width must be at least
// signedWidth(v).
func appendSigned(dst []byte, v int64, width int) []byte {
	for i := 0; i < width; i++ {
		c := byte(v & 0x7F)
		v >>= 7
		if i < width-1 {
			c |= 0x80
		}
		dst = append(dst, c)
	}
	return dst
}
