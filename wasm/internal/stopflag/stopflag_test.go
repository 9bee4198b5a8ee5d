package stopflag

import (
	"context"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/podctl/podctl/wasm/prepare"
)

// flagModule is a module whose only content is a flag global: a mutable
// i32, zero at first, exported as prepare.FlagExport.
var flagModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
	0x06, 0x06, 0x01, 0x7f, 0x01, 0x41, 0x00, 0x0b, // globals: (mut i32) (i32.const 0)
	0x07, 0x0f, 0x01, 0x0b, 'p', 'o', 'd', 'c', 't', 'l', '.', 'f', 'l', 'a', 'g', 0x03, 0x00, // export global 0
}

func newFlag(t *testing.T) (*Flag, api.MutableGlobal) {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	t.Cleanup(func() { r.Close(ctx) })
	mod, err := r.Instantiate(ctx, flagModule)
	if err != nil {
		t.Fatal(err)
	}
	g, ok := mod.ExportedGlobal(prepare.FlagExport).(api.MutableGlobal)
	if !ok {
		t.Fatalf("the module does not export the mutable global %s", prepare.FlagExport)
	}
	return New(g), g
}

func TestRaiseLower(t *testing.T) {
	f, g := newFlag(t)
	if f.Lower() {
		t.Error("a fresh flag was raised")
	}
	f.Raise()
	if g.Get() != 1 {
		t.Errorf("raised, the global is %d", g.Get())
	}
	if !f.Lower() {
		t.Error("Lower missed the Raise")
	}
	if g.Get() != 0 || f.Lower() {
		t.Errorf("lowered, the global is %d", g.Get())
	}
}

// TestRequests plays a host that stores a request in a plain variable and
// raises the flag, against a poll function, in another goroutine, that
// lowers the flag and then reads the request: every request must be seen
// (a Lower that read and cleared the global in two steps would lose a
// Raise in between), and under the race detector the accesses to the
// request and to the global must be ordered by the Flag alone.
func TestRequests(t *testing.T) {
	f, _ := newFlag(t)
	const n = 2000
	var request int // written by the host, read by the poll function
	served := make(chan int)
	done := make(chan struct{})
	go func() {
		defer close(served)
		for {
			select {
			case <-done:
				return
			default:
			}
			if f.Lower() {
				served <- request
			}
		}
	}()
	defer func() {
		close(done)
		for range served {
		}
	}()
	for i := 1; i <= n; i++ {
		request = i
		f.Raise()
		select {
		case got := <-served:
			if got != i {
				t.Fatalf("request %d served as %d", i, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("request %d lost (the flag raised: %v)", i, f.Lower())
		}
	}
}
