//go:build !failpoints

package failpoint

// Hit does nothing: this build has no failpoints.
func Hit(string) {}

// Armed is false: this build has no failpoints.
func Armed(string) bool { return false }
