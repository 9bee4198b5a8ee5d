//go:build linux && cgo

package dock

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"

	"github.com/podctl/podctl/internal/cpufeat"
	"github.com/podctl/podctl/internal/errdefs"
)

func TestCheckDock(t *testing.T) {
	ours, err := cpufeat.Host()
	if err != nil {
		t.Fatal(err)
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	for _, tc := range []struct {
		name  string
		hello Hello
		o     MigrateOptions
		want  string // "" for accepted
	}{
		{"same ISA", Hello{ISA: runtime.GOARCH, OS: "linux", Capabilities: []string{"criu", "criu-lazy"}, CPUFeatures: ours}, MigrateOptions{}, ""},
		{"other ISA", Hello{ISA: other, OS: "linux", Capabilities: []string{"criu"}, CPUFeatures: ours}, MigrateOptions{}, "only a Wasm vessel pod can change ISA"},
		{"no CRIU", Hello{ISA: runtime.GOARCH, OS: "linux", CPUFeatures: ours}, MigrateOptions{}, "cannot restore CRIU images"},
		{"no lazy", Hello{ISA: runtime.GOARCH, OS: "linux", Capabilities: []string{"criu"}, CPUFeatures: ours}, MigrateOptions{Live: true}, "lazily"},
		{"missing CPU feature", Hello{ISA: runtime.GOARCH, OS: "linux", Capabilities: []string{"criu"}}, MigrateOptions{}, "lacks features"},
		{"missing CPU feature, forced", Hello{ISA: runtime.GOARCH, OS: "linux", Capabilities: []string{"criu"}}, MigrateOptions{Force: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "missing CPU feature" && len(cpufeat.Missing(nil, ours)) == 0 {
				t.Skip("this CPU reports no features that count")
			}
			err := checkDock(&tc.hello, tc.o)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || errdefs.KindOf(err) != errdefs.Unsupported {
				t.Fatalf("got %v (kind %d), want an Unsupported error containing %q", err, errdefs.KindOf(err), tc.want)
			}
		})
	}
}

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

// TestRelay checks that the relay carries both directions and drains
// what the local side wrote before it closed.
func TestRelay(t *testing.T) {
	local, peer := net.Pipe()
	upR, upW := io.Pipe()
	downR, downW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- relay(local, downR, upW) }()
	go func() {
		peer.Write([]byte("from-criu"))
		buf := make([]byte, 9)
		io.ReadFull(peer, buf)
		peer.Write([]byte(" last-words"))
		peer.Close()
	}()
	go func() {
		downW.Write([]byte("from-dock"))
		downW.Close()
	}()
	got, err := io.ReadAll(upR)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "from-criu last-words" {
		t.Fatalf("up: %q", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("relay: %v", err)
	}
}
