//go:build linux

package doctor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// criuWrapper is where `make deps` (scripts/deps.sh) installs its criu
// wrapper; it is tried when criu is not on PATH.
const criuWrapper = "/usr/local/sbin/criu"

// checkCRIU finds criu, checks that `criu --version` is at least 4.2 and that
// `criu check` says "Looks good".
func (r *runner) checkCRIU(ctx context.Context) []Check {
	const (
		versionName = "criu: version"
		checkName   = "criu: check"
	)
	path, err := r.findCRIU()
	if err != nil {
		return []Check{
			failed(versionName, true, err.Error(), criuFix),
			failed(checkName, true, "not run: criu not found", criuFix),
		}
	}
	return []Check{
		r.criuVersionCheck(ctx, versionName, path),
		r.criuCheckCheck(ctx, checkName, path),
	}
}

// findCRIU returns the criu binary to check: Options.CRIUPath when set,
// otherwise criu from PATH or the `make deps` wrapper.
func (r *runner) findCRIU() (string, error) {
	if p := r.opts.CRIUPath; p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("criu %s: %w", p, err)
		}
		return path, nil
	}
	return lookPath("criu", criuWrapper)
}

func (r *runner) criuVersionCheck(ctx context.Context, name, path string) Check {
	out, err := runCommand(ctx, r.cmdTimeout, path, "--version")
	if err != nil {
		return failed(name, true, err.Error()+outputSuffix(out), criuFix)
	}
	v, err := parseCRIUVersion(out)
	if err != nil {
		return failed(name, true, fmt.Sprintf("%s: %v", path, err), criuFix)
	}
	if minimum := (criuVersion{Major: criuMinMajor, Minor: criuMinMinor}); v.Less(minimum) {
		return failed(name, true, fmt.Sprintf("%s (%s), need >= %s", v, path, minimum), criuFix)
	}
	return passed(name, true, fmt.Sprintf("%s (%s)", v, path))
}

func (r *runner) criuCheckCheck(ctx context.Context, name, path string) Check {
	out, err := runCommand(ctx, r.cmdTimeout, path, "check")
	if !strings.Contains(out, "Looks good") {
		detail := path + " check did not say \"Looks good\""
		if err != nil {
			detail = err.Error()
		}
		fix := criuFix
		if os.Geteuid() != 0 {
			fix = "run podctl as root; if that is not enough, " + criuFix
		}
		return failed(name, true, detail+outputSuffix(out), fix)
	}
	detail := "Looks good"
	if warns := criuWarnings(out); len(warns) > 0 {
		detail += " (warnings: " + strings.Join(warns, "; ") + ")"
	}
	return passed(name, true, detail)
}

// criuWarnings returns the messages of the warning lines of CRIU output:
//
//	Warn  (criu/cr-check.c:1343): Hardware breakpoints don't seem to work
func criuWarnings(out string) []string {
	var warns []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "Warn") {
			continue
		}
		if _, msg, ok := strings.Cut(line, "): "); ok {
			line = msg
		}
		warns = append(warns, line)
	}
	return warns
}
