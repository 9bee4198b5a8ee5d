package desktop

import (
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"io"
	"math/bits"
)

// xwdHeader is the header of an X Window Dump (X11's XWDFile.h, file
// version 7): 25 big-endian 32-bit fields, then the window's name.
type xwdHeader struct {
	HeaderSize, FileVersion, PixmapFormat, PixmapDepth  uint32
	PixmapWidth, PixmapHeight, XOffset, ByteOrder       uint32
	BitmapUnit, BitmapBitOrder, BitmapPad, BitsPerPixel uint32
	BytesPerLine, VisualClass                           uint32
	RedMask, GreenMask, BlueMask                        uint32
	BitsPerRGB, ColormapEntries, NColors                uint32
	WindowWidth, WindowHeight, WindowX, WindowY         uint32
	WindowBorderWidth                                   uint32
}

// Values of the header this decoder reads: a ZPixmap of a TrueColor
// visual (what Xvnc's screen is, at depth 24) with 32 bits per pixel.
const (
	xwdVersion   = 7
	xwdZPixmap   = 2
	xwdTrueColor = 4
	xwdLSBFirst  = 0
	xwdColorSize = 12 // one XWDColor: pixel, red, green, blue, flags, pad
	xwdMaxSide   = 16384
)

// DecodeXWD reads the dump that `xwd -root` writes of a TrueColor screen
// of 32 bits per pixel.
func DecodeXWD(r io.Reader) (*image.RGBA, error) {
	var h xwdHeader
	if err := binary.Read(r, binary.BigEndian, &h); err != nil {
		return nil, fmt.Errorf("xwd: header: %w", err)
	}
	switch {
	case h.FileVersion != xwdVersion:
		return nil, fmt.Errorf("xwd: file version %d, want %d", h.FileVersion, xwdVersion)
	case h.PixmapFormat != xwdZPixmap || h.VisualClass != xwdTrueColor || h.BitsPerPixel != 32:
		return nil, fmt.Errorf("xwd: format %d, visual class %d, %d bits per pixel: only a TrueColor ZPixmap of 32 bits per pixel is read", h.PixmapFormat, h.VisualClass, h.BitsPerPixel)
	case h.PixmapWidth == 0 || h.PixmapHeight == 0 || h.PixmapWidth > xwdMaxSide || h.PixmapHeight > xwdMaxSide:
		return nil, fmt.Errorf("xwd: a %dx%d image", h.PixmapWidth, h.PixmapHeight)
	case h.BytesPerLine < 4*h.PixmapWidth || h.HeaderSize < 100 || h.HeaderSize > 4096:
		return nil, fmt.Errorf("xwd: %d bytes per line of %d pixels, header of %d bytes", h.BytesPerLine, h.PixmapWidth, h.HeaderSize)
	}
	// The window's name, then the colormap, which TrueColor does not
	// need.
	if _, err := io.CopyN(io.Discard, r, int64(h.HeaderSize-100)+int64(h.NColors)*xwdColorSize); err != nil {
		return nil, fmt.Errorf("xwd: name and colormap: %w", err)
	}
	order := binary.ByteOrder(binary.BigEndian)
	if h.ByteOrder == xwdLSBFirst {
		order = binary.LittleEndian
	}
	red, green, blue := channel(h.RedMask), channel(h.GreenMask), channel(h.BlueMask)
	w, ht := int(h.PixmapWidth), int(h.PixmapHeight)
	img := image.NewRGBA(image.Rect(0, 0, w, ht))
	line := make([]byte, h.BytesPerLine)
	for y := range ht {
		if _, err := io.ReadFull(r, line); err != nil {
			return nil, fmt.Errorf("xwd: line %d of %d: %w", y, ht, err)
		}
		for x := range w {
			p := order.Uint32(line[4*x:])
			img.SetRGBA(x, y, color.RGBA{red.of(p), green.of(p), blue.of(p), 0xff})
		}
	}
	return img, nil
}

// channelMask reads one colour channel out of a pixel, scaled to 8 bits.
type channelMask struct {
	mask  uint32
	shift int
	width int
}

func channel(mask uint32) channelMask {
	return channelMask{mask: mask, shift: bits.TrailingZeros32(mask), width: bits.OnesCount32(mask)}
}

func (c channelMask) of(p uint32) uint8 {
	if c.width == 0 {
		return 0
	}
	v := (p & c.mask) >> c.shift
	if c.width >= 8 {
		return uint8(v >> (c.width - 8))
	}
	// Fewer bits: spread them over 8 (0 stays 0, the top stays 255).
	return uint8(v * 255 / (1<<c.width - 1))
}
