package desktop

import (
	"bytes"
	"encoding/binary"
	"image/color"
	"testing"
)

// xwdFile lays out an X Window Dump as XWDFile.h (X11R7) defines it, by
// hand: the 25 header fields, the window's name, a colormap of ncolors
// entries, and width*height pixels of 32 bits in the given byte order,
// each line padded to bytesPerLine.
func xwdFile(t *testing.T, order binary.ByteOrder, byteOrderField uint32, w, h, bytesPerLine int, ncolors int, pixels []uint32) []byte {
	t.Helper()
	name := []byte("root\x00")
	hdr := []uint32{
		uint32(100 + len(name)), 7, 2, 24, // header size, version 7, ZPixmap, depth
		uint32(w), uint32(h), 0, byteOrderField, // size, xoffset, byte order
		32, 0, 32, 32, // bitmap unit, bit order, pad, bits per pixel
		uint32(bytesPerLine), 4, // bytes per line, TrueColor
		0xff0000, 0x00ff00, 0x0000ff, // masks
		8, 256, uint32(ncolors), // bits per rgb, colormap entries, ncolors
		uint32(w), uint32(h), 0, 0, 0,
	}
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, hdr)
	b.Write(name)
	b.Write(make([]byte, 12*ncolors))
	line := make([]byte, bytesPerLine)
	for y := range h {
		clear(line)
		for x := range w {
			order.PutUint32(line[4*x:], pixels[y*w+x])
		}
		b.Write(line)
	}
	return b.Bytes()
}

// TestDecodeXWD decodes dumps laid out from the format's definition, in
// both byte orders, with a colormap and padded lines, and refuses what
// it does not read.
func TestDecodeXWD(t *testing.T) {
	pixels := []uint32{0xff0000, 0x00ff00, 0x0000ff, 0x123456, 0xffffff, 0x000000}
	want := []color.RGBA{{0xff, 0, 0, 0xff}, {0, 0xff, 0, 0xff}, {0, 0, 0xff, 0xff}, {0x12, 0x34, 0x56, 0xff}, {0xff, 0xff, 0xff, 0xff}, {0, 0, 0, 0xff}}
	for _, tc := range []struct {
		name  string
		order binary.ByteOrder
		field uint32
	}{{"LSBFirst", binary.LittleEndian, 0}, {"MSBFirst", binary.BigEndian, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := DecodeXWD(bytes.NewReader(xwdFile(t, tc.order, tc.field, 3, 2, 16, 2, pixels)))
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != 3 || b.Dy() != 2 {
				t.Fatalf("bounds %v, want 3x2", b)
			}
			for i, c := range want {
				if got := img.RGBAAt(i%3, i/3); got != c {
					t.Errorf("pixel (%d,%d) = %v, want %v", i%3, i/3, got, c)
				}
			}
		})
	}
	good := xwdFile(t, binary.LittleEndian, 0, 3, 2, 12, 0, pixels)
	for _, tc := range []struct {
		name string
		edit func(b []byte)
	}{
		{"truncated pixels", nil},
		{"version 6", func(b []byte) { binary.BigEndian.PutUint32(b[4:], 6) }},
		{"16 bits per pixel", func(b []byte) { binary.BigEndian.PutUint32(b[44:], 16) }},
		{"PseudoColor", func(b []byte) { binary.BigEndian.PutUint32(b[52:], 3) }},
		{"short lines", func(b []byte) { binary.BigEndian.PutUint32(b[48:], 8) }},
		{"huge", func(b []byte) { binary.BigEndian.PutUint32(b[16:], 1<<20) }},
	} {
		b := append([]byte{}, good...)
		if tc.edit == nil {
			b = b[:len(b)-1]
		} else {
			tc.edit(b)
		}
		if _, err := DecodeXWD(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: decoded", tc.name)
		}
	}
}
