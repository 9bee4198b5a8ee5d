package migrate

import (
	"bytes"
	"testing"
)

func TestFaultyWriter(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 100)
	for _, chunk := range []int{1, 7, 1000} {
		var corrupt, trunc bytes.Buffer
		cw := &faultyWriter{w: &corrupt, at: 500, corrupt: true}
		tw := &faultyWriter{w: &trunc, at: 500}
		for i := 0; i < len(data); i += chunk {
			j := min(i+chunk, len(data))
			cw.Write(data[i:j])
			tw.Write(data[i:j])
		}
		want := append([]byte(nil), data...)
		want[500] ^= 0x40
		if !bytes.Equal(corrupt.Bytes(), want) {
			t.Errorf("chunk %d: corrupt stream differs elsewhere than byte 500", chunk)
		}
		if !bytes.Equal(trunc.Bytes(), data[:500]) {
			t.Errorf("chunk %d: truncated stream has %d bytes, want the first 500", chunk, trunc.Len())
		}
	}
}
