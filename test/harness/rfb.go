package harness

import (
	"crypto/des"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math/bits"
	"net"
	"time"
)

// RFB is a VNC viewer's side of one RFB 3.8 connection (RFC 6143), as
// small as a test needs: VNC authentication, raw encoding, 32-bit
// true colour. It keeps the framebuffer the server's updates draw.
type RFB struct {
	conn net.Conn
	// Width, Height and Name are what the server's ServerInit says.
	Width, Height int
	Name          string
	// Frame is the framebuffer as the updates so far drew it.
	Frame *image.RGBA
}

// DialRFB runs the RFB handshake on conn with VNC authentication by
// password, asks for raw 32-bit pixels, and returns the session.
func DialRFB(conn net.Conn, password string, timeout time.Duration) (*RFB, error) {
	conn.SetDeadline(time.Now().Add(timeout))
	defer conn.SetDeadline(time.Time{})
	var version [12]byte
	if _, err := io.ReadFull(conn, version[:]); err != nil {
		return nil, fmt.Errorf("rfb: version: %w", err)
	}
	if string(version[:4]) != "RFB " {
		return nil, fmt.Errorf("rfb: server says %q", version)
	}
	if _, err := conn.Write([]byte("RFB 003.008\n")); err != nil {
		return nil, err
	}
	var n [1]byte
	if _, err := io.ReadFull(conn, n[:]); err != nil {
		return nil, fmt.Errorf("rfb: security types: %w", err)
	}
	if n[0] == 0 {
		return nil, fmt.Errorf("rfb: refused: %s", readReason(conn))
	}
	types := make([]byte, n[0])
	if _, err := io.ReadFull(conn, types); err != nil {
		return nil, err
	}
	const vncAuth = 2
	found := false
	for _, t := range types {
		found = found || t == vncAuth
	}
	if !found {
		return nil, fmt.Errorf("rfb: no VNC authentication among security types %v", types)
	}
	if _, err := conn.Write([]byte{vncAuth}); err != nil {
		return nil, err
	}
	var challenge [16]byte
	if _, err := io.ReadFull(conn, challenge[:]); err != nil {
		return nil, fmt.Errorf("rfb: challenge: %w", err)
	}
	response, err := vncResponse(password, challenge)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(response[:]); err != nil {
		return nil, err
	}
	var result uint32
	if err := binary.Read(conn, binary.BigEndian, &result); err != nil {
		return nil, fmt.Errorf("rfb: security result: %w", err)
	}
	if result != 0 {
		return nil, fmt.Errorf("rfb: authentication failed: %s", readReason(conn))
	}
	if _, err := conn.Write([]byte{1}); err != nil { // ClientInit: shared
		return nil, err
	}
	var init struct {
		Width, Height uint16
		PixelFormat   [16]byte
		NameLength    uint32
	}
	if err := binary.Read(conn, binary.BigEndian, &init); err != nil {
		return nil, fmt.Errorf("rfb: server init: %w", err)
	}
	if init.NameLength > 1<<16 {
		return nil, fmt.Errorf("rfb: a name of %d bytes", init.NameLength)
	}
	name := make([]byte, init.NameLength)
	if _, err := io.ReadFull(conn, name); err != nil {
		return nil, err
	}
	r := &RFB{conn: conn, Width: int(init.Width), Height: int(init.Height), Name: string(name),
		Frame: image.NewRGBA(image.Rect(0, 0, int(init.Width), int(init.Height)))}
	// SetPixelFormat: 32 bits, depth 24, little-endian, true colour,
	// 8 bits a channel, red at 16, green at 8, blue at 0.
	pf := []byte{0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0}
	// SetEncodings: raw only.
	enc := []byte{2, 0, 0, 1, 0, 0, 0, 0}
	if _, err := conn.Write(append(pf, enc...)); err != nil {
		return nil, err
	}
	return r, nil
}

// vncResponse encrypts the challenge with DES, keyed by the password's
// first 8 bytes with each byte's bits reversed (VNC's quirk).
func vncResponse(password string, challenge [16]byte) ([16]byte, error) {
	var key [8]byte
	copy(key[:], password)
	for i := range key {
		key[i] = bits.Reverse8(key[i])
	}
	block, err := des.NewCipher(key[:])
	if err != nil {
		return [16]byte{}, err
	}
	var out [16]byte
	block.Encrypt(out[:8], challenge[:8])
	block.Encrypt(out[8:], challenge[8:])
	return out, nil
}

// readReason reads a failure's reason string.
func readReason(r io.Reader) string {
	var n uint32
	if binary.Read(r, binary.BigEndian, &n) != nil || n > 4096 {
		return "(no reason)"
	}
	b := make([]byte, n)
	io.ReadFull(r, b)
	return string(b)
}

// Request asks for an update of the whole screen; incremental asks only
// for what changed since the last.
func (r *RFB) Request(incremental bool) error {
	inc := byte(0)
	if incremental {
		inc = 1
	}
	msg := []byte{3, inc, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(msg[6:], uint16(r.Width))
	binary.BigEndian.PutUint16(msg[8:], uint16(r.Height))
	_, err := r.conn.Write(msg)
	return err
}

// ErrNoUpdate is ReadUpdate's error when no update came before the
// deadline.
var ErrNoUpdate = errors.New("rfb: no framebuffer update before the deadline")

// ReadUpdate reads server messages until a framebuffer update, draws it
// into Frame and returns how many rectangles it had. Bells, cut text and
// colour maps are read past.
func (r *RFB) ReadUpdate(timeout time.Duration) (int, error) {
	r.conn.SetReadDeadline(time.Now().Add(timeout))
	defer r.conn.SetReadDeadline(time.Time{})
	for {
		var typ [1]byte
		if _, err := io.ReadFull(r.conn, typ[:]); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return 0, ErrNoUpdate
			}
			return 0, fmt.Errorf("rfb: message: %w", err)
		}
		switch typ[0] {
		case 0:
			return r.readRects()
		case 1: // SetColourMapEntries
			var h struct {
				Pad          uint8
				First, Count uint16
			}
			if err := binary.Read(r.conn, binary.BigEndian, &h); err != nil {
				return 0, err
			}
			if _, err := io.CopyN(io.Discard, r.conn, int64(h.Count)*6); err != nil {
				return 0, err
			}
		case 2: // Bell
		case 3: // ServerCutText
			var h struct {
				Pad    [3]byte
				Length uint32
			}
			if err := binary.Read(r.conn, binary.BigEndian, &h); err != nil {
				return 0, err
			}
			if _, err := io.CopyN(io.Discard, r.conn, int64(h.Length)); err != nil {
				return 0, err
			}
		default:
			return 0, fmt.Errorf("rfb: unknown server message %d", typ[0])
		}
	}
}

// readRects reads a FramebufferUpdate's rectangles, raw-encoded.
func (r *RFB) readRects() (int, error) {
	var h struct {
		Pad   uint8
		Count uint16
	}
	if err := binary.Read(r.conn, binary.BigEndian, &h); err != nil {
		return 0, err
	}
	for i := range int(h.Count) {
		var rect struct {
			X, Y, W, H uint16
			Encoding   int32
		}
		if err := binary.Read(r.conn, binary.BigEndian, &rect); err != nil {
			return 0, err
		}
		if rect.Encoding != 0 {
			return 0, fmt.Errorf("rfb: rectangle %d has encoding %d, not raw", i, rect.Encoding)
		}
		if int(rect.X)+int(rect.W) > r.Width || int(rect.Y)+int(rect.H) > r.Height {
			return 0, fmt.Errorf("rfb: rectangle %+v outside the %dx%d screen", rect, r.Width, r.Height)
		}
		line := make([]byte, 4*int(rect.W))
		for y := range int(rect.H) {
			if _, err := io.ReadFull(r.conn, line); err != nil {
				return 0, err
			}
			for x := range int(rect.W) {
				p := binary.LittleEndian.Uint32(line[4*x:])
				r.Frame.SetRGBA(int(rect.X)+x, int(rect.Y)+y, color.RGBA{uint8(p >> 16), uint8(p >> 8), uint8(p), 0xff})
			}
		}
	}
	return int(h.Count), nil
}

// Close closes the connection.
func (r *RFB) Close() error { return r.conn.Close() }
