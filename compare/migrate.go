package compare

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"time"

	"github.com/podctl/podctl/internal/errdefs"
)

// pathMigrate prefixes the migration paths that --to adds: each of
// podctl's paths migrates its pod to the dock mid-run ("migrate-podctl",
// "migrate-vessel-criu", "migrate-vessel-snapshot") with `podctl
// migrate`, and the workload finishes there. Raw CRIU and Podman have no
// dock to migrate to.
const pathMigrate = "migrate-"

// Migrating reports whether path migrates to the --to dock.
func Migrating(path string) bool { return strings.HasPrefix(path, pathMigrate) }

// migration is one of podctl's paths migrating its pod to the dock.
type migration struct {
	r *Runner
	// of is the path whose pod migrates: PathPodctl, PathVesselCRIU or
	// PathVesselSnapshot.
	of string
}

func (m migration) name() string { return pathMigrate + m.of }

// migrateReport is what `podctl migrate --json` prints (migrate.Result).
type migrateReport struct {
	Session      string        `json:"session"`
	Restore      time.Duration `json:"restoreNs"`
	Downtime     time.Duration `json:"downtimeNs"`
	ArchiveBytes int64         `json:"archiveBytes"`
	PageBytes    int64         `json:"pageBytes"`
	Bytes        int64         `json:"bytes"`
}

// measure creates the pod, migrates it once it has run for at, waits
// for its end at the dock, reads its output there and removes it, all
// by the migration's session.
func (m migration) measure(ctx context.Context, b *built, at time.Duration, run int) (map[string]float64, string, error) {
	var name, via string
	var create []string
	if m.of == PathPodctl {
		name, via = podName(b, "mpod", run), "criu"
		create = carriedPodCreate(b, name)
	} else {
		name, via = podName(b, "mwasm", run), "criu"
		if m.of == PathVesselSnapshot {
			via = "wasm"
		}
		data, err := m.r.dataDir(b, m.name(), run)
		if err != nil {
			return nil, "", err
		}
		create = vesselPodCreate(b, name, data)
	}
	pc := m.r.podctl()
	// A pod whose migration failed is still here.
	defer pc.remove(name)
	if _, _, err := pc.run(ctx, create...); err != nil {
		return nil, "", err
	}
	if m.of == PathPodctl {
		if err := carry(ctx, pc, name, b.native); err != nil {
			return nil, "", err
		}
	}
	met, err := pc.footprintAfter(ctx, name, at)
	if err != nil {
		return nil, "", err
	}
	var res migrateReport
	args := append([]string{"migrate", name, "--to", m.r.Options.To, "--via", via, "--json"}, m.r.DockFlags...)
	d, err := pc.runJSON(ctx, &res, args...)
	if err != nil {
		return nil, "", pc.finishedEarly(ctx, name, at, err)
	}
	defer pc.run(context.Background(), m.r.sessionArgs("rm", res.Session)...)
	met["migrate-ms"] = ms(d)
	met["downtime-ms"] = ms(res.Downtime)
	met["dock-restore-ms"] = ms(res.Restore)
	met["sent-bytes"] = float64(res.ArchiveBytes + res.PageBytes + res.Bytes)
	out, err := pc.waitFor(ctx, m.r.sessionArgs("inspect", res.Session), m.r.sessionArgs("logs", res.Session))
	return met, out, err
}

// sessionArgs is the podctl command that does verb (inspect, logs, rm)
// on the pod that a migration session brought to the dock.
func (r *Runner) sessionArgs(verb, session string) []string {
	return append([]string{"session", verb, session, "--dock", r.Options.To}, r.DockFlags...)
}

// checkDock refuses a dock that does not take this node's certificate:
// it asks it for a session it cannot know, which a dock that
// authenticates this node answers with "no pod" (podctl's exit status
// 5).
func (r *Runner) checkDock(ctx context.Context) error {
	var b [16]byte
	rand.Read(b[:])
	_, _, err := r.podctl().run(ctx, r.sessionArgs("inspect", hex.EncodeToString(b[:]))...)
	if err == nil || !strings.Contains(err.Error(), "no pod of session") {
		return errdefs.New(errdefs.Unsupported, "podctl compare: --to %s: the dock does not answer this node: %v", r.Options.To, err)
	}
	return nil
}

// A pod's image does not travel with it: a dock serves only the images
// it has (the host's, and those under its --images), which a peer's
// temporary image is not. What travels is the pod's writable layer. So
// the native pod that migrates runs on the host image, and its binary is
// written into its writable layer, which `podctl migrate` carries.

// carriedBinary is where the migrating pod finds its binary, in its
// private /root; its data directory is beside it.
const carriedBinary = "/root/workload"

// carriedPodCreate is the podctl command that makes pod name on the host
// image, waiting for its binary (see carry) and then running it.
func carriedPodCreate(b *built, name string) []string {
	script := `while [ ! -e ` + carriedBinary + ` ]; do sleep 0.01; done; mkdir -p /root/data; exec ` + carriedBinary + ` "$@"`
	return append([]string{"create", "--name", name, "--", "sh", "-c", script, b.Name}, b.Args(b.size, "/root/data")...)
}

// carry writes the static binary bin into pod name's writable layer,
// where the pod's command waits for it (renamed into place once whole).
func carry(ctx context.Context, pc podctlCmd, name, bin string) error {
	f, err := os.Open(bin)
	if err != nil {
		return err
	}
	defer f.Close()
	tmp := carriedBinary + ".part"
	_, _, err = pc.runInput(ctx, f, "exec", "-i", name, "--", "sh", "-c", "cat > "+tmp+" && chmod 755 "+tmp+" && mv "+tmp+" "+carriedBinary)
	return err
}
