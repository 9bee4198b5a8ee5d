// Package version holds podctl's version, recorded in checkpoint archives
// and reported by docks.
package version

// Version is podctl's version. Release builds override it with
// -ldflags "-X github.com/podctl/podctl/internal/version.Version=...".
var Version = "0.3.0-dev"
