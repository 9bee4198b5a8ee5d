package compare

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// PodmanProbe says whether Podman can checkpoint here, and if not, why,
// in one line for the report.
type PodmanProbe struct {
	OK  bool   `json:"ok"`
	Why string `json:"why,omitempty"`
}

// ProbePodman checks that Podman is installed and that it can
// checkpoint with the CRIU on PATH (`podman info` and its runtime's
// checkpoint support).
func ProbePodman(ctx context.Context) PodmanProbe {
	if _, err := exec.LookPath("podman"); err != nil {
		return PodmanProbe{Why: "podman is not installed"}
	}
	out, err := exec.CommandContext(ctx, "podman", "info", "--format", "{{.Host.OCIRuntime.Name}}").CombinedOutput()
	if err != nil {
		return PodmanProbe{Why: "podman info fails: " + firstLine(string(out))}
	}
	return PodmanProbe{OK: true}
}

// podmanContainer is the native binary in a Podman container (its root
// filesystem the native pod's image, no network), through `podman
// container checkpoint` and `podman container restore`.
type podmanContainer struct{ r *Runner }

func (podmanContainer) name() string { return PathPodman }

func (p podmanContainer) measure(ctx context.Context, b *built, at time.Duration, run int) (map[string]float64, string, error) {
	name := podName(b, "podman", run)
	args := append([]string{"run", "-d", "--name", name, "--network", "none", "--rootfs", b.image, "/" + b.Name}, b.Args(b.size, "/data")...)
	if _, err := runTimed(ctx, "podman", args...); err != nil {
		return nil, "", fmt.Errorf("podman run: %w", err)
	}
	defer exec.Command("podman", "rm", "-f", name).Run()
	if err := sleepCtx(ctx, at); err != nil {
		return nil, "", err
	}
	m := map[string]float64{}
	d, err := runTimed(ctx, "podman", "container", "checkpoint", name)
	if err != nil {
		return nil, "", fmt.Errorf("podman container checkpoint: %w", err)
	}
	m["checkpoint-ms"] = ms(d)
	if d, err = runTimed(ctx, "podman", "container", "restore", name); err != nil {
		return nil, "", fmt.Errorf("podman container restore: %w", err)
	}
	m["restore-ms"] = ms(d)
	if _, err := runTimed(ctx, "podman", "wait", name); err != nil {
		return nil, "", fmt.Errorf("podman wait: %w", err)
	}
	out, err := exec.CommandContext(ctx, "podman", "logs", name).CombinedOutput()
	return m, string(out), err
}

// firstLine is the first line of s, trimmed.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
