package virtns

import (
	"bytes"
	"context"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"github.com/podctl/podctl/internal/statedir"
)

// CRIU probes the kernel (about 30 ms here) on every run unless it finds
// its "kerndat" cache in /run/criu.kdat. It only writes that cache when
// /run is a tmpfs, so that a reboot into another kernel cannot leave a
// stale one behind; on hosts whose /run is an ordinary directory it
// never caches at all. EnsureKerndatCache fills the cache for CRIU there:
// it runs `criu check` in a private mount namespace whose /run is a fresh
// tmpfs, copies the cache out, and records the boot it belongs to next to
// it, regenerating both whenever the boot ID changes. CRIU itself checks
// only the cache's magic numbers when it loads it.
const (
	kerndatCache = "/run/criu.kdat"
	kerndatBoot  = "/run/criu.kdat.podctl-boot"
	bootIDFile   = "/proc/sys/kernel/random/boot_id"
)

// EnsureKerndatCache makes sure CRIU finds a kerndat cache of this boot.
// Failing to make one is not an error: CRIU then just probes.
func EnsureKerndatCache(ctx context.Context) {
	var st unix.Statfs_t
	if err := unix.Statfs("/run", &st); err != nil || st.Type == unix.TMPFS_MAGIC {
		return // CRIU manages its own cache on a tmpfs /run
	}
	boot, err := os.ReadFile(bootIDFile)
	if err != nil {
		return
	}
	if have, err := os.ReadFile(kerndatBoot); err == nil && bytes.Equal(have, boot) {
		if _, err := os.Stat(kerndatCache); err == nil {
			return
		}
	}
	cache, err := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
		"mount -t tmpfs podctl-kerndat /run && criu check >/dev/null 2>&1; cat "+kerndatCache).Output()
	if err != nil || len(cache) == 0 {
		return
	}
	if statedir.WriteFileAtomic(kerndatCache, cache, 0o600) == nil {
		statedir.WriteFileAtomic(kerndatBoot, boot, 0o600)
	}
}
