package startreport

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

type report struct {
	Error string `json:"error"`
}

func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name, written string
		want          report
		err           string
	}{
		{"line", `{"error":"no such file"}` + "\n", report{Error: "no such file"}, ""},
		{"line without newline", `{}`, report{}, ""},
		{"nothing", "", report{}, "exited before starting the command"},
		{"not JSON", "oops\n", report{}, "invalid character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w := pipe(t)
			w.WriteString(tc.written)
			w.Close()
			var got report
			err := Read(context.Background(), r, &got, "exited before starting the command")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestReadCanceled checks that a child that neither writes nor exits
// holds the parent no longer than its context.
func TestReadCanceled(t *testing.T) {
	r, _ := pipe(t) // the write end stays open: the child lives on
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var got report
	if err := Read(ctx, r, &got, "exited"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's deadline", err)
	}
}
