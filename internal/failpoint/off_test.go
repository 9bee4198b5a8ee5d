//go:build !failpoints

package failpoint

import (
	"context"
	"testing"
)

// TestReleaseBuildIgnoresEnv checks that a build without the tag cannot
// be made to crash or corrupt its output through the environment.
func TestReleaseBuildIgnoresEnv(t *testing.T) {
	t.Setenv(EnvVar, "x")
	Hit(context.Background(), "x")
	for _, prefix := range []string{PausePrefix, HoldPrefix} {
		t.Setenv(EnvVar, prefix+"x")
		Hit(context.Background(), "x")
	}
	if Armed("x") {
		t.Fatal("a failpoint is armed in a build without the failpoints tag")
	}
}
