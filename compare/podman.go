package compare

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/checkpoint-restore/go-criu/v8/crit/images/stats"
	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/virtns"
)

// podmanGlobal are the global flags of every podman command: runc (the
// distribution's crun has no CRIU support), cgroupfs and a file for its
// events (the machine runs no systemd).
var podmanGlobal = []string{"--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"}

// PodmanProbe says whether Podman can checkpoint here, and if not, why,
// in one line for the report.
type PodmanProbe struct {
	OK  bool   `json:"ok"`
	Why string `json:"why,omitempty"`
}

// ProbePodman checks that Podman and runc are installed and that
// `podman info` works.
func ProbePodman(ctx context.Context) PodmanProbe {
	for _, tool := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return PodmanProbe{Why: tool + " is not installed (make deps installs it)"}
		}
	}
	out, err := podman(ctx, "info", "--format", "{{.Host.OCIRuntime.Name}}").CombinedOutput()
	if err != nil {
		return PodmanProbe{Why: "podman info fails: " + firstLine(string(out))}
	}
	return PodmanProbe{OK: true}
}

// podman is a podman command with the global flags.
func podman(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "podman", append(append([]string{}, podmanGlobal...), args...)...)
}

// podmanContainer is the native binary in a Podman container (its root
// filesystem the native pod's image, no network), through `podman
// container checkpoint` and `podman container restore`.
type podmanContainer struct{ r *Runner }

func (podmanContainer) name() string { return PathPodman }

func (p podmanContainer) measure(ctx context.Context, b *built, at time.Duration, run int) (map[string]float64, string, error) {
	name := podName(b, "podman", run)
	if err := p.start(ctx, b, name); err != nil {
		return nil, "", err
	}
	defer podman(context.Background(), "rm", "-f", name).Run()
	if err := sleepCtx(ctx, at); err != nil {
		return nil, "", err
	}
	m := map[string]float64{}
	if out, err := podman(ctx, "inspect", "-f", "{{.State.Pid}}", name).Output(); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil {
			if rss, ok := residentBytes(pid); ok {
				m["footprint-bytes"] = float64(rss)
			}
		}
	}
	var dump podmanStats[stats.DumpStatsEntry]
	start := time.Now()
	if err := podmanJSON(ctx, &dump, "container", "checkpoint", "--print-stats", name); err != nil {
		out, _ := podman(ctx, "inspect", "-f", "{{.State.Status}}", name).Output()
		if st := strings.TrimSpace(string(out)); st == "exited" || st == "stopped" {
			return nil, "", finishedEarly(at, err)
		}
		return nil, "", err
	}
	m["checkpoint-ms"] = msSince(start)
	if st := dump.criu(); st != nil {
		c := virtns.FromDumpStats(st)
		addCRIUStats(m, c)
		m["frozen-ms"] = ms(c.Frozen)
	}
	// The images are in the container's directory.
	out, err := podman(ctx, "container", "inspect", "-f", "{{.StaticDir}}", name).Output()
	if err != nil {
		return nil, "", fmt.Errorf("podman container inspect: %w", err)
	}
	if err := addSizes(m, filepath.Join(strings.TrimSpace(string(out)), "checkpoint")); err != nil {
		return nil, "", err
	}
	var restore podmanStats[stats.RestoreStatsEntry]
	start = time.Now()
	if err := podmanJSON(ctx, &restore, "container", "restore", "--print-stats", name); err != nil {
		return nil, "", err
	}
	m["restore-ms"] = msSince(start)
	if st := restore.criu(); st != nil {
		addCRIUStats(m, virtns.FromRestoreStats(st))
	}
	if err := podmanRun(ctx, "wait", "--interval", "10ms", name); err != nil {
		return nil, "", err
	}
	out, err = podman(ctx, "logs", name).CombinedOutput()
	return m, string(out), err
}

// start runs b in a new container name, detached, on a root filesystem
// of its own: Podman writes into a --rootfs directory itself, where a pod
// writes into its own layer.
func (p podmanContainer) start(ctx context.Context, b *built, name string) error {
	rootfs, err := makeImage(filepath.Join(p.r.Work, "podman", name), b.native)
	if err != nil {
		return err
	}
	// Podman raises a root container's limits past what this process
	// holds, which the kernel refuses without CAP_SYS_RESOURCE: the
	// container gets this process's open files and a common process cap.
	var nofile unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile)
	args := []string{"run", "-d", "--name", name, "--network", "none",
		"--ulimit", fmt.Sprintf("nofile=%d:%d", nofile.Cur, nofile.Max), "--ulimit", "nproc=4096:4096",
		"--rootfs", rootfs, "/" + b.Name}
	return podmanRun(ctx, append(args, b.Args(b.size, "/data")...)...)
}

// runTime runs b in a container uninterrupted, and returns its run time
// as a checkpoint sees it: from the end of `podman run -d` to the exit
// (see podRunTime).
func (p podmanContainer) runTime(ctx context.Context, b *built) (time.Duration, error) {
	name := podName(b, "podman", -1)
	if err := p.start(ctx, b, name); err != nil {
		return 0, err
	}
	defer podman(context.Background(), "rm", "-f", name).Run()
	start := time.Now()
	// podman wait polls, every 250 ms unless told.
	if err := podmanRun(ctx, "wait", "--interval", "10ms", name); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// podmanStats is what `podman container checkpoint --print-stats` and
// `restore --print-stats` print: CRIU's statistics as go-criu reads
// them, for each container.
type podmanStats[T any] struct {
	Containers []struct {
		CRIU *T `json:"criu_statistics"`
	} `json:"container_statistics"`
}

// criu is the statistics of the one container.
func (s podmanStats[T]) criu() *T {
	if len(s.Containers) != 1 {
		return nil
	}
	return s.Containers[0].CRIU
}

// podmanJSON runs a podman command and decodes what it prints into v.
func podmanJSON(ctx context.Context, v any, args ...string) error {
	cmd := podman(ctx, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("podman %s: %w: %s", args[0], err, firstLine(stderr.String()))
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("podman %s: its statistics: %w", strings.Join(args, " "), err)
	}
	return nil
}

// podmanRun runs a podman command; its error holds podman's own line.
func podmanRun(ctx context.Context, args ...string) error {
	if out, err := podman(ctx, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("podman %s: %w: %s", args[0], err, firstLine(string(out)))
	}
	return nil
}

// firstLine is the first line of s, trimmed.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
