package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// ForeignISA is an ISA whose podctl runs here under qemu-user.
type ForeignISA struct {
	// GOARCH names it as Go does; Emulator is its qemu-user binary.
	GOARCH, Emulator string
}

// ForeignISAs are the ISAs the vessel tests migrate through, in order.
var ForeignISAs = []ForeignISA{
	{"arm64", "qemu-aarch64-static"},
	{"s390x", "qemu-s390x-static"},
	{"riscv64", "qemu-riscv64-static"},
	{"ppc64le", "qemu-ppc64le-static"},
}

// BuildForeign compiles podctl for isa (pure Go, as `make build` does)
// into dir and returns a launcher script that runs it under qemu-user.
// The launcher also sets PODCTL_SELF, since a podctl under qemu-user
// without binfmt cannot start itself (the supervisors of its vessel
// pods) otherwise. When the emulator is not installed, its error wraps
// ErrToolMissing (callers skip, see SkipOrFail); a failed build is any
// other error.
func BuildForeign(dir string, isa ForeignISA) (string, error) {
	emu, err := LookTool(isa.Emulator, "qemu-user-static")
	if err != nil {
		return "", err
	}
	_, self, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(self), "..", "..")
	bin := filepath.Join(dir, "podctl-"+isa.GOARCH)
	cmd := exec.Command("go", "build", "-tags", "failpoints", "-o", bin, "./cmd/podctl")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+isa.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build podctl for %s: %v\n%s", isa.GOARCH, err, out)
	}
	launcher := filepath.Join(dir, "podctl-"+isa.GOARCH+".sh")
	script := fmt.Sprintf("#!/bin/sh\nexport PODCTL_SELF=%q\nexec %s %s \"$@\"\n", emu+" "+bin, emu, bin)
	if err := os.WriteFile(launcher, []byte(script), 0o755); err != nil {
		return "", fmt.Errorf("write the launcher of podctl for %s: %w", isa.GOARCH, err)
	}
	return launcher, nil
}
