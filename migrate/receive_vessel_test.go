package migrate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/podctl/podctl/dock"
	"github.com/podctl/podctl/internal/budget"
	"github.com/podctl/podctl/internal/errdefs"
	"github.com/podctl/podctl/internal/pki"
	"github.com/podctl/podctl/pod/vesselpod"
	"github.com/podctl/podctl/wasm/snapshot"
)

const golden = "../wasm/snapshot/testdata/golden-v1.snap"

// goldenSnapshot returns the snapshot of the format's golden file.
func goldenSnapshot(t testing.TB) *snapshot.Snapshot {
	t.Helper()
	data, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	s, err := snapshot.Decode(bytes.NewReader(data), snapshot.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// encode encodes s.
func encode(t testing.TB, s *snapshot.Snapshot) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := snapshot.Encode(&buf, s); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// transfer is what a dock hands its vessel receiver for a snapshot,
// with leases of mem (nil: no budget).
func transfer(ctx context.Context, data []byte, name string, mem *budget.Budget) *dock.VesselTransfer {
	return &dock.VesselTransfer{Body: bytes.NewReader(data), Size: int64(len(data)), Name: name, Memory: mem.Lease(ctx)}
}

// TestFailedReceiveLeavesNoModule checks that a receive that fails after
// the snapshot's module was stored (its pod's name is taken) leaves no
// new module in the cache, and that one that was there before stays.
func TestFailedReceiveLeavesNoModule(t *testing.T) {
	store := vesselpod.Store{Root: t.TempDir()}
	if err := os.MkdirAll(store.Root+"/vessels/web-1", 0o700); err != nil { // the snapshot's name
		t.Fatal(err)
	}
	r := VesselReceiver{Host: PlainVessels{Store: store}, Modules: vesselpod.NewModuleCache(store, 0)}
	snap := goldenSnapshot(t)
	snap.Module = append(append([]byte(nil), snap.Module...), "another build"...)
	snap.ModuleHash = sha256.Sum256(snap.Module)
	data := encode(t, snap)
	ctx := context.Background()
	_, _, err := r.ReceiveVessel(ctx, transfer(ctx, data, "", nil))
	if !errdefs.Is(err, errdefs.AlreadyExists) {
		t.Fatalf("receiving a pod whose name is taken: %v", err)
	}
	if store.HasModule(snap.ModuleHash) {
		t.Fatal("the failed receive left its module in the cache")
	}

	// A module cached before the failed receive stays.
	if _, _, err := r.ReceiveVessel(ctx, transfer(ctx, data, "", nil)); err == nil {
		t.Fatal("the receive succeeded")
	}
	kept := goldenSnapshot(t)
	if _, err := store.ModuleFor(kept, vesselpod.RestoreOptions{}); err != nil { // caches it
		t.Fatal(err)
	}
	if _, _, err := r.ReceiveVessel(ctx, transfer(ctx, encode(t, kept), "", nil)); err == nil {
		t.Fatal("the receive succeeded")
	}
	if !store.HasModule(kept.ModuleHash) {
		t.Fatal("a failed receive took a module the cache had before it")
	}
}

// TestReceiveTooLargeForTheBudget checks that a snapshot that needs more
// memory than the whole budget is refused as such, without allocating
// it, and says which option to raise.
func TestReceiveTooLargeForTheBudget(t *testing.T) {
	snap := goldenSnapshot(t)
	snap.Memory = append(snap.Memory, make([]byte, 256<<20)...)
	data := encode(t, snap)
	snap = nil
	r := VesselReceiver{Host: PlainVessels{Store: vesselpod.Store{Root: t.TempDir()}}}
	mem := budget.New("memory", "--memory-budget", 64<<20, time.Second)
	ctx := context.Background()
	var err error
	n := allocated(func() {
		tr := transfer(ctx, data, "", mem)
		defer tr.Memory.Release()
		_, _, err = r.ReceiveVessel(ctx, tr)
	})
	t.Logf("refused after allocating %.1f MiB: %v", float64(n)/(1<<20), err)
	if !errdefs.Is(err, errdefs.Unsupported) || !bytes.Contains([]byte(err.Error()), []byte("(--memory-budget)")) {
		t.Fatalf("a snapshot of 256 MiB of memory through a budget of 64 MiB: %v (kind %d)", err, errdefs.KindOf(err))
	}
	if n > 16<<20 {
		t.Errorf("allocated %d bytes for a snapshot refused as too large", n)
	}
}

// allocated returns how many bytes f allocated.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// holdHost stands in for the vessel store: it holds every snapshot it
// is given (and so the memory its receive reserved) until release is
// closed, then fails the receive.
type holdHost struct {
	held    chan string
	release chan struct{}
}

func (h *holdHost) HasModule([32]byte) bool { return false }
func (h *holdHost) ReceiveVessel(ctx context.Context, snap *snapshot.Snapshot, o vesselpod.RestoreOptions) (string, error) {
	h.held <- o.Name
	<-h.release
	runtime.KeepAlive(snap)
	return "", errdefs.New(errdefs.Conflict, "held")
}
func (h *holdHost) Decide(context.Context, string, bool) error { return nil }

// TestDockHeapUnderBudget runs a real dock (mutual TLS, HTTP/2) with the
// real vessel receiver and a memory budget, and has N authenticated
// clients send it snapshot bombs at once: a few KiB each that decode to
// 96 MiB of memory. The receives that get their memory hold it until
// every other one has been refused. What the process allocates meanwhile
// (TotalAlloc: garbage included, dock and clients together) must stay
// under the budget plus a stated slack, where without the budget it is N
// times a bomb.
func TestDockHeapUnderBudget(t *testing.T) {
	const (
		n        = 8
		bomb     = 96 << 20
		memory   = 128 << 20
		slack    = 32 << 20 // TLS and HTTP/2 of n connections, both ends; the bombs' buffers
		holdWait = 300 * time.Millisecond
	)
	snap := goldenSnapshot(t)
	snap.Memory = append(snap.Memory, make([]byte, bomb)...)
	data := encode(t, snap)
	snap = nil
	t.Logf("each bomb: a %d-byte snapshot of %d MiB of memory", len(data), bomb>>20)

	host := &holdHost{held: make(chan string, n), release: make(chan struct{})}
	// Each client's connection holds its share of the budget too.
	mem := budget.New("memory", "--memory-budget", memory+n*dock.ConnMemory, holdWait)
	addr, clientTLS := serveTestDock(t, &dock.Server{Vessels: VesselReceiver{Host: host}, Memory: mem})
	clients := make([]*dock.Client, n)
	for i := range clients {
		clients[i] = dock.NewClient(addr, clientTLS)
		defer clients[i].Close()
		if _, err := clients[i].Hello(context.Background()); err != nil { // connected and authenticated
			t.Fatal(err)
		}
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	peak := sampleHeap(t)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.SendVessel(context.Background(), bytes.NewReader(data), int64(len(data)), "bomb-"+strconv.Itoa(i), dock.NewSession())
			errs <- err
		}()
	}
	held, refused := 0, 0
	timeout := time.After(30 * time.Second)
	for held+refused < n {
		select {
		case <-host.held:
			held++
		case err := <-errs:
			if !errdefs.Is(err, errdefs.Busy) {
				t.Fatalf("a bomb was refused with %v, want dock busy", err)
			}
			refused++
		case <-timeout:
			t.Fatalf("%d held, %d refused after 30 s", held, refused)
		}
	}
	runtime.ReadMemStats(&after)
	heapPeak := peak()
	close(host.release)
	wg.Wait()

	grew := int64(after.TotalAlloc - before.TotalAlloc)
	t.Logf("%d bombs at once through a %d MiB budget: %d held their memory, %d refused; the process allocated %.1f MiB (TotalAlloc), its heap peaked %.1f MiB above where it started (HeapAlloc)",
		n, memory>>20, held, refused, float64(grew)/(1<<20), float64(heapPeak-int64(before.HeapAlloc))/(1<<20))
	if grew > memory+slack {
		t.Fatalf("the process allocated %d bytes while %d bombs were received, more than the budget of %d plus %d", grew, n, memory, slack)
	}
	// The budget guarantees the bound above, not progress: receives that
	// start together each reserve a part as they decode, and all of them
	// may time out waiting for the rest (0 held, seen once in CI). That
	// is a known weakness of reserving as decoding goes, not something
	// this test may hide by requiring one to be held.
	if refused == 0 {
		t.Fatalf("%d bombs held, none refused: the budget bound nothing", held)
	}
	// A handler releases its request's leases after its answer is out:
	// the clients may have it before the budget does.
	deadline := time.Now().Add(10 * time.Second)
	for mem.InUse() != n*dock.ConnMemory && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if mem.InUse() != n*dock.ConnMemory {
		t.Errorf("%d bytes of the budget still in use, want the %d connections' shares", mem.InUse(), n)
	}
}

// sampleHeap samples HeapAlloc every few milliseconds until the function
// it returns is called, which returns the highest sample.
func sampleHeap(t *testing.T) func() int64 {
	stop := make(chan struct{})
	done := make(chan int64)
	go func() {
		var peak int64
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, int64(m.HeapAlloc))
			select {
			case <-stop:
				done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 {
		close(stop)
		return <-done
	}
}

// serveTestDock serves s on a loopback port with a fresh cluster's
// certificates, and returns its address and a client configuration.
func serveTestDock(t *testing.T, s *dock.Server) (string, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	if err := pki.Init(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dock", "source"} {
		if err := pki.Issue(dir, name, []string{"127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if s.TLS, err = pki.ServerConfig(dir, "dock"); err != nil {
		t.Fatal(err)
	}
	s.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-served
	})
	cfg, err := pki.ClientConfig(dir, "source")
	if err != nil {
		t.Fatal(err)
	}
	return ln.Addr().String(), cfg
}

// TestDockRefusesStringBomb sends a real dock, as an authenticated peer,
// the string bomb of the security review (a few KiB declaring a million
// arguments of 64 KiB: the fuzz seed wasm/snapshot's FuzzDecode keeps)
// and checks that the dock refuses it while the process allocates no
// more than its memory budget and a stated slack.
func TestDockRefusesStringBomb(t *testing.T) {
	const (
		memory = 8 << 20
		slack  = 8 << 20 // TLS, HTTP/2 and the decoder's buffers, both ends; without the budget the bomb makes the dock allocate 31 MiB
	)
	seed, err := os.ReadFile("../wasm/snapshot/testdata/fuzz/FuzzDecode/string-bomb")
	if err != nil {
		t.Fatal(err)
	}
	// A Go fuzz corpus file: a header line, then []byte("...").
	_, lit, _ := bytes.Cut(seed, []byte("\n"))
	quoted, ok := bytes.CutPrefix(bytes.TrimSpace(lit), []byte("[]byte("))
	if !ok {
		t.Fatalf("corpus file %q", seed[:min(len(seed), 40)])
	}
	s, err := strconv.Unquote(string(bytes.TrimSuffix(quoted, []byte(")"))))
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(s)

	mem := budget.New("memory", "--memory-budget", memory+dock.ConnMemory, time.Second)
	host := PlainVessels{Store: vesselpod.Store{Root: t.TempDir()}}
	addr, clientTLS := serveTestDock(t, &dock.Server{Vessels: VesselReceiver{Host: host}, Memory: mem})
	c := dock.NewClient(addr, clientTLS)
	defer c.Close()
	if _, err := c.Hello(context.Background()); err != nil {
		t.Fatal(err)
	}
	var sendErr error
	n := allocated(func() {
		_, sendErr = c.SendVessel(context.Background(), bytes.NewReader(data), int64(len(data)), "bomb", dock.NewSession())
	})
	t.Logf("a %d-byte string bomb: refused with %v after the process allocated %.1f MiB", len(data), sendErr, float64(n)/(1<<20))
	if sendErr == nil {
		t.Fatal("the dock received a string bomb")
	}
	if n > memory+slack {
		t.Fatalf("the process allocated %d bytes for a refused bomb, more than the budget of %d plus %d", n, memory, slack)
	}
}
