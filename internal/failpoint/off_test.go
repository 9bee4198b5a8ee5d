//go:build !failpoints

package failpoint

import "testing"

// TestReleaseBuildIgnoresEnv checks that a build without the tag cannot
// be made to crash or corrupt its output through the environment.
func TestReleaseBuildIgnoresEnv(t *testing.T) {
	t.Setenv(EnvVar, "x")
	Hit("x")
	t.Setenv(EnvVar, PausePrefix+"x")
	Hit("x")
	if Armed("x") {
		t.Fatal("a failpoint is armed in a build without the failpoints tag")
	}
}
