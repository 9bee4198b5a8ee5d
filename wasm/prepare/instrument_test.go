package prepare

import (
	"context"
	"errors"
	"testing"

	"github.com/tetratelabs/wazero"
)

// checkSameRun runs the original and the instrumented module and fails
// the test unless they print the same and exit the same way. With flag,
// the instrumented module runs with its flag set throughout, and takes
// the poll function's path at every poll point.
func checkSameRun(t *testing.T, original, instrumented []byte, flag bool, args ...string) {
	t.Helper()
	ctx := context.Background()
	cache := wazero.NewCompilationCache()
	t.Cleanup(func() { cache.Close(ctx) })
	want, _ := runOnce(ctx, t, cache, original, args...)
	got, polls := runFlagged(ctx, t, cache, instrumented, flag, args...)
	if got.stdout != want.stdout || got.exitCode != want.exitCode {
		t.Fatalf("instrumented run differs:\n got exit %d, stdout:\n%s\nwant exit %d, stdout:\n%s",
			got.exitCode, firstLines(got.stdout, 20), want.exitCode, firstLines(want.stdout, 20))
	}
	if want.stdout == "" {
		t.Fatal("the guest printed nothing")
	}
	switch {
	case !flag && polls != 0:
		t.Errorf("poll called %d times with the flag never set", polls)
	case flag && polls == 0:
		t.Error("poll never called with the flag set")
	}
	t.Logf("exit code %d, %d bytes of output, %d polls", got.exitCode, len(got.stdout), polls)
}

func TestInstrumentC(t *testing.T) {
	for _, opt := range []string{"-O0", "-O2"} {
		t.Run(opt, func(t *testing.T) {
			original := buildC(t, "guest", opt)
			instrumented, err := Instrument(original)
			if err != nil {
				t.Fatal(err)
			}
			validate(t, instrumented)
			t.Run("flag clear", func(t *testing.T) { checkSameRun(t, original, instrumented, false, "all", "2") })
			t.Run("flag set", func(t *testing.T) { checkSameRun(t, original, instrumented, true, "quick") })
		})
	}
}

func TestInstrumentGo(t *testing.T) {
	original := buildGo(t)
	instrumented, err := Instrument(original)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, instrumented)
	t.Run("flag clear", func(t *testing.T) { checkSameRun(t, original, instrumented, false, "all", "1") })
	t.Run("flag set", func(t *testing.T) { checkSameRun(t, original, instrumented, true, "quick") })
}

func TestInstrumentTwice(t *testing.T) {
	original := buildC(t, "spin", "-O2")
	instrumented, err := Instrument(original)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Instrument(instrumented); !errors.Is(err, ErrInstrumented) {
		t.Fatalf("instrumenting twice: got %v, want ErrInstrumented", err)
	}
}
