// Package startreport is the start handshake between podctl and a child
// it starts in the background (a pod's init, a vessel's supervisor): the
// child writes one JSON line to a pipe it inherits once its payload runs,
// or has failed to start, and the parent reads it.
package startreport

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"time"
)

// Read reads the child's line from r into v. If the pipe ends without a
// line (the child died first), it returns an error with the text died
// ("exited before starting the command", say). If ctx ends first, it
// returns ctx's error; the child is the caller's to kill.
func Read(ctx context.Context, r *os.File, v any, died string) error {
	got := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadBytes('\n')
		switch {
		case err == nil || (errors.Is(err, io.EOF) && len(line) > 0):
			err = json.Unmarshal(line, v)
		case errors.Is(err, io.EOF):
			err = errors.New(died)
		}
		got <- err
	}()
	select {
	case err := <-got:
		return err
	case <-ctx.Done():
		r.SetReadDeadline(time.Now()) // unblocks the reader goroutine
		<-got
		return ctx.Err()
	}
}
