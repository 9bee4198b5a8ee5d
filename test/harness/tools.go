package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// ErrToolMissing is what an error wraps when a tool that scripts/deps.sh
// installs is not installed. Tests skip on it (SkipOrFail) and fail on
// any other error.
var ErrToolMissing = errors.New("tool not installed (run make deps)")

// RequireToolsEnv names the environment variable that, set to anything
// but "", makes a missing tool fail the tests that need it rather than
// skip them.
const RequireToolsEnv = "PODCTL_REQUIRE_TOOLS"

// Missing reports whether err says that a tool is not installed (wraps
// ErrToolMissing) and tests may skip for it ($PODCTL_REQUIRE_TOOLS is not
// set).
func Missing(err error) bool {
	return errors.Is(err, ErrToolMissing) && os.Getenv(RequireToolsEnv) == ""
}

// SkipOrFail ends tb if err is not nil: with a skip when the error is a
// missing tool's (see Missing), with a failure otherwise.
func SkipOrFail(tb testing.TB, err error) {
	tb.Helper()
	switch {
	case err == nil:
	case Missing(err):
		tb.Skip(err)
	default:
		tb.Fatal(err)
	}
}

// LookTool returns the path of the executable name on PATH. When it is
// not there, the error wraps ErrToolMissing and names pkg, the Debian
// package scripts/deps.sh installs it from.
func LookTool(name, pkg string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %s (package %s): %v", ErrToolMissing, name, pkg, err)
	}
	return p, nil
}

// NeedTool returns the path of the executable name (see LookTool), or
// ends tb when it is missing (see SkipOrFail).
func NeedTool(tb testing.TB, name, pkg string) string {
	tb.Helper()
	p, err := LookTool(name, pkg)
	SkipOrFail(tb, err)
	return p
}
