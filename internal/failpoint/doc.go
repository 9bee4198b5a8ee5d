// Package failpoint lets end-to-end tests kill podctl at a named step, to
// check that whatever a crash leaves behind is finished or rolled back by
// the next command. A failpoint is armed by setting PODCTL_FAILPOINT to its
// name in podctl's environment; unarmed, Hit costs one environment lookup.
//
// Failpoints exist only in binaries built with the tag "failpoints",
// which the end-to-end tests' builds use (test/harness); a release build
// (`make build`) ignores PODCTL_FAILPOINT, and its Hit and Armed compile
// to nothing.
//
// Armed as "pause:" and its name instead, a failpoint holds the step
// forever rather than crashing: a test can then act on the other side of
// a migration (interrupt it, say) at a moment it knows. Armed as "hold:"
// and its name, it holds the step until the command is interrupted, so
// that a test can Ctrl-C a command at a step it chooses and check what
// the command leaves. Armed as CRIUScriptPrefix and a path, it has every
// CRIU run of the process call that script at each of CRIU's steps (its
// action scripts), so that a test can hold CRIU itself at a step.
package failpoint

// EnvVar names the environment variable that arms a failpoint.
const EnvVar = "PODCTL_FAILPOINT"

// PausePrefix arms a failpoint that pauses instead of killing.
const PausePrefix = "pause:"

// HoldPrefix arms a failpoint that waits for the command's interruption
// instead of killing.
const HoldPrefix = "hold:"

// CRIUScriptPrefix arms the CRIU action script failpoint.
const CRIUScriptPrefix = "criu-action-script:"
