//go:build !failpoints

package failpoint

import "context"

// Hit does nothing: this build has no failpoints.
func Hit(context.Context, string) {}

// Armed is false: this build has no failpoints.
func Armed(string) bool { return false }

// Value is never armed: this build has no failpoints.
func Value(string) (string, bool) { return "", false }
