// Package testseed gives random tests a seed they log and can replay.
package testseed

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// EnvVar names the environment variable that replays a random test with
// a given seed.
const EnvVar = "PODCTL_TEST_SEED"

// Seed returns the seed of a random test: $PODCTL_TEST_SEED when it is
// set, the time otherwise. It logs the seed, and how to replay it.
func Seed(tb testing.TB) int64 {
	tb.Helper()
	seed := time.Now().UnixNano()
	if v := os.Getenv(EnvVar); v != "" {
		var err error
		if seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			tb.Fatalf("%s=%q: %v", EnvVar, v, err)
		}
	}
	tb.Logf("seed %d (replay with %s=%d)", seed, EnvVar, seed)
	return seed
}
