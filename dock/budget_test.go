package dock

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podctl/podctl/internal/budget"
	"github.com/podctl/podctl/internal/errdefs"
)

// The dock's budgets, tested with stand-in receivers that reserve what a
// real one would before allocating or writing it.

// holdVessels reserves from the request's memory lease the number of
// bytes its body names, then holds them until release is closed, as a
// receiver decoding a large snapshot would.
type holdVessels struct {
	holding chan string // the name of each vessel that got its memory
	release chan struct{}
}

func (h *holdVessels) HasModule([32]byte) bool { return false }
func (h *holdVessels) ReceiveVessel(ctx context.Context, t *VesselTransfer) (string, time.Duration, error) {
	b, err := io.ReadAll(t.Body)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return "", 0, err
	}
	if err := t.Memory.Reserve(n); err != nil {
		return "", 0, err
	}
	h.holding <- t.Name
	select {
	case <-h.release:
	case <-ctx.Done():
		return "", 0, ctx.Err()
	}
	return t.Name, time.Millisecond, nil
}
func (h *holdVessels) Decide(context.Context, string, bool) error { return nil }

// TestVesselMemoryBudget checks that concurrent receives share the dock's
// memory budget: while one holds most of it, a receive that needs more
// than is left is refused as busy once the budget's wait is over, one
// that fits goes through at once, and the memory is free again once the
// first one ends.
func TestVesselMemoryBudget(t *testing.T) {
	const wait = 300 * time.Millisecond
	v := &holdVessels{holding: make(chan string, 4), release: make(chan struct{})}
	mem := budget.New("memory", "--memory-budget", 64<<20+ConnMemory, wait) // the client's connection holds its share
	c := startDock(t, &Server{Vessels: v, Memory: mem})
	ctx := context.Background()
	send := func(name string, n int64) (*Event, error) {
		body := strconv.FormatInt(n, 10)
		return c.SendVessel(ctx, strings.NewReader(body), int64(len(body)), name, NewSession())
	}

	big := make(chan error, 1)
	go func() {
		_, err := send("big", 48<<20)
		big <- err
	}()
	if got := <-v.holding; got != "big" {
		t.Fatalf("%s got its memory first", got)
	}

	start := time.Now()
	_, err := send("over", 32<<20)
	waited := time.Since(start)
	if !errdefs.Is(err, errdefs.Busy) || !strings.HasSuffix(err.Error(), ": dock busy: memory budget of 96 MiB in use") {
		t.Fatalf("a receive beyond the budget: %v (kind %d), want Busy", err, errdefs.KindOf(err))
	}
	t.Logf("refused after %v: %v", waited.Round(time.Millisecond), err)
	if waited < wait {
		t.Errorf("refused after %v, before the budget's wait of %v", waited, wait)
	}
	if mem.InUse() > mem.Size() {
		t.Fatalf("%d bytes in use of a budget of %d", mem.InUse(), mem.Size())
	}

	fits := make(chan error, 1)
	go func() {
		_, err := send("fits", 8<<20)
		fits <- err
	}()
	if got := <-v.holding; got != "fits" {
		t.Fatalf("%s got its memory, want fits", got)
	}
	close(v.release)
	if err := <-big; err != nil {
		t.Fatalf("the receive within the budget: %v", err)
	}
	if err := <-fits; err != nil {
		t.Fatalf("the receive that fits beside it: %v", err)
	}
	// Released with their requests: only the connection's share stays.
	deadline := time.Now().Add(5 * time.Second)
	for mem.InUse() != ConnMemory && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if mem.InUse() != ConnMemory {
		t.Fatalf("%d bytes still in use once every receive ended, want the connection's %d", mem.InUse(), ConnMemory)
	}
	if _, err := send("later", 60<<20); err != nil {
		t.Fatalf("a receive once the budget is free: %v", err)
	}
	<-v.holding
}

// TestVesselMemoryBudgetConcurrent sends many receives at once, each
// needing a fifth of the budget, and checks that those that got their
// memory never held more than the budget together.
func TestVesselMemoryBudgetConcurrent(t *testing.T) {
	v := &holdVessels{holding: make(chan string, 16), release: make(chan struct{})}
	mem := budget.New("memory", "", 50<<20+ConnMemory, 200*time.Millisecond) // the client's connection holds its share
	c := startDock(t, &Server{Vessels: v, Memory: mem})
	// Connected first, as a migration is (Hello): the receives share one
	// connection rather than race to open more.
	if _, err := c.Hello(context.Background()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := strconv.Itoa(10 << 20)
			_, err := c.SendVessel(context.Background(), strings.NewReader(body), int64(len(body)), "v"+strconv.Itoa(i), NewSession())
			errs <- err
		}()
	}
	// Hold every receive that got its memory until the others have been
	// refused.
	held := 0
	timeout := time.After(10 * time.Second)
	refused := 0
	for held+refused < 12 {
		select {
		case <-v.holding:
			held++
		case err := <-errs:
			if !errdefs.Is(err, errdefs.Busy) {
				t.Fatalf("a refused receive: %v", err)
			}
			refused++
		case <-timeout:
			t.Fatalf("%d held, %d refused after 10 s", held, refused)
		}
	}
	close(v.release)
	wg.Wait()
	t.Logf("%d receives held their memory at once, %d were refused", held, refused)
	if held == 0 || held > 5 || refused == 0 {
		t.Fatalf("%d receives of 10 MiB held a 50 MiB budget at once, %d were refused", held, refused)
	}
}

// TestPageTunnelDiskBudget checks that the pages of a stop-and-copy
// migration are reserved from the dock's disk budget as they arrive, and
// that the source hears of the refusal when they exceed what another
// receive leaves of it; post-copy's pages go to memory and are not.
func TestPageTunnelDiskBudget(t *testing.T) {
	for _, lazy := range []bool{false, true} {
		t.Run("lazy="+strconv.FormatBool(lazy), func(t *testing.T) {
			disk := budget.New("disk", "--disk-budget", 1<<20, 100*time.Millisecond)
			other := disk.Lease(context.Background()) // another receive's
			defer other.Release()
			if err := other.Reserve(768 << 10); err != nil {
				t.Fatal(err)
			}
			pods := &echoPods{pages: make(chan []byte, 1)}
			c := startDock(t, &Server{Pods: pods, Vessels: noVessels{}, Disk: disk})
			send, criu, done := sendToPages(t, c, SendPodOptions{Name: "web", Lazy: lazy})
			go func() {
				criu.Write(bytes.Repeat([]byte{0xa5}, 512<<10))
				shutdownWrite(criu)
				io.Copy(io.Discard, criu)
				criu.Close()
			}()
			<-done
			send.EndArchive()
			_, err := send.Restored()
			if lazy {
				if err != nil {
					t.Fatalf("post-copy pages counted against the disk budget: %v", err)
				}
				return
			}
			if !errdefs.Is(err, errdefs.Busy) || !strings.Contains(err.Error(), "page tunnel: dock busy: disk budget of 1 MiB in use") {
				t.Fatalf("512 KiB of pages through the 256 KiB left of a disk budget: %v (kind %d)", err, errdefs.KindOf(err))
			}
			t.Logf("refused: %v", err)
			if n := len(<-pods.pages); n > 256<<10 {
				t.Errorf("the page server got %d bytes of the 256 KiB left", n)
			}
		})
	}
}

// TestPodDiskLease checks that a native pod's receiver gets a lease of
// the dock's disk budget, and that a refusal is what the source hears
// first, whatever the receiver made of it: here an archive larger than
// the whole budget, which no wait would help.
func TestPodDiskLease(t *testing.T) {
	disk := budget.New("disk", "--disk-budget", 1<<20, 50*time.Millisecond)
	c := startDock(t, &Server{Pods: extractPods{}, Vessels: noVessels{}, Disk: disk})
	send, err := c.SendPod(context.Background(), SendPodOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	io.WriteString(send.Archive, "manifest;")
	if err := send.Accepted(); err != nil {
		t.Fatal(err)
	}
	send.Archive.Write(make([]byte, 2<<20))
	send.EndArchive()
	_, err = send.Restored()
	if !errdefs.Is(err, errdefs.Unsupported) || !strings.HasSuffix(err.Error(), ": the receive needs more than the dock's whole disk budget of 1 MiB (--disk-budget) (then: extract: corrupt archive)") {
		t.Fatalf("got %v (kind %d)", err, errdefs.KindOf(err))
	}
	if disk.InUse() > disk.Size() {
		t.Fatalf("%d bytes in use of %d", disk.InUse(), disk.Size())
	}
}

// extractPods "extracts" the archive, reserving its bytes from the
// transfer's disk lease as it writes them, and blames the archive when
// it cannot, as a decoder that gets a read error would.
type extractPods struct{ noDecisions }

func (extractPods) Describe(context.Context, *Hello) {}
func (extractPods) ReceivePod(ctx context.Context, t *PodTransfer) error {
	if err := t.Accepted("p", "10.88.0.9"); err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := t.Archive.Read(buf)
		if n > 0 && t.Disk.Reserve(int64(n)) != nil {
			return errdefs.New(errdefs.InvalidImage, "extract: corrupt archive")
		}
		if err == io.EOF {
			return t.Restored("p", "10.88.0.9", time.Millisecond)
		}
		if err != nil {
			return err
		}
	}
}

// TestConnectionsShareTheBudget checks that every open connection holds
// what HTTP/2 lets its peer make the dock buffer, so that connections
// alone cannot take the dock past its memory budget: one that does not
// fit is closed at once, and its share comes back when one closes.
func TestConnectionsShareTheBudget(t *testing.T) {
	mem := budget.New("memory", "--memory-budget", 2*ConnMemory, 0)
	c := startDock(t, &Server{Vessels: noVessels{}, Memory: mem})
	inUse := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for mem.InUse() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%d bytes of the budget in use, want %d", mem.InUse(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	var held []net.Conn
	for range 2 {
		conn, err := net.Dial("tcp", c.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		held = append(held, conn)
	}
	inUse(2 * ConnMemory)

	third, err := net.Dial("tcp", c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection beyond the budget: %v, want it closed at once", err)
	}
	if mem.InUse() != 2*ConnMemory {
		t.Fatalf("%d bytes in use after a refused connection", mem.InUse())
	}

	held[0].Close()
	inUse(ConnMemory)
	if _, err := c.Hello(context.Background()); err != nil {
		t.Fatalf("a client once a connection closed: %v", err)
	}
}
