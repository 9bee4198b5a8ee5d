package dock

import (
	"io"
	"net"
	"testing"
)

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
