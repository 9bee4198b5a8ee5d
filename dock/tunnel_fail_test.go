package dock

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// refusingPods accepts a pod, lets its page helper read one request (as a
// CRIU page server reads PS_IOV_OPEN2, whose answer the dumping CRIU
// waits for), then fails the receive, as a dock that rejects the archive
// mid-dump does: the helper ends with the request's context, unanswered.
type refusingPods struct{ echoPods }

func (r *refusingPods) ReceivePod(ctx context.Context, t *PodTransfer) error {
	if err := t.Accepted("p", "10.88.0.9"); err != nil {
		return err
	}
	asked := make(chan struct{})
	go t.TunnelPages(ctx, func(hctx context.Context, conn *os.File) error {
		var req [8]byte
		if _, err := io.ReadFull(conn, req[:]); err != nil {
			return err
		}
		close(asked)
		<-hctx.Done() // killed with the request, never answering
		return hctx.Err()
	}, nil)
	select {
	case <-asked:
	case <-ctx.Done():
	}
	return errors.New("archive truncated")
}

// TestTunnelEndsWhenTheReceiveFails fails a receive while the source's
// CRIU waits for its page server's answer: the tunnel must end at once, so
// that CRIU fails at once and the source reports the dock's error. (The
// tunnel used to wait 10 s for the last words of a page server that had
// been killed with the receive, and CRIU's failure then hid the dock's.)
func TestTunnelEndsWhenTheReceiveFails(t *testing.T) {
	c := startDock(t, &Server{Pods: &refusingPods{}, Vessels: noVessels{}})
	_, criu, done := sendToPages(t, c, SendPodOptions{})
	defer criu.Close()
	start := time.Now()
	criu.Write([]byte("OPEN2..."))
	var ans [1]byte
	n, rerr := criu.Read(ans[:]) // CRIU: recv(has_parent)
	if n != 0 || rerr == nil {
		t.Fatalf("the killed page server answered: %d bytes, %v", n, rerr)
	}
	criu.Close() // CRIU fails and exits ("The page server doesn't answer")
	<-done
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the source's CRIU waited %v for an answer from a page server the dock had stopped", d)
	}
}
