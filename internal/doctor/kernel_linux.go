//go:build linux

package doctor

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// checkRoot checks that podctl runs with effective user id 0.
func checkRoot(context.Context) []Check {
	const name = "privileges: root"
	if euid := os.Geteuid(); euid != 0 {
		return []Check{failed(name, true, fmt.Sprintf("euid %d", euid),
			"run podctl as root (for example with sudo)")}
	}
	return []Check{passed(name, true, "euid 0")}
}

// checkNamespaces checks that the kernel supports each namespace type podctl
// uses, by looking for its file in /proc/self/ns.
func checkNamespaces(context.Context) []Check {
	namespaces := []struct {
		ns       string
		required bool
		fix      string
	}{
		{"pid", true, "use a kernel built with CONFIG_PID_NS=y"},
		{"net", true, "use a kernel built with CONFIG_NET_NS=y"},
		{"mnt", true, "use a Linux kernel >= 3.8"},
		{"uts", true, "use a kernel built with CONFIG_UTS_NS=y"},
		{"ipc", true, "use a kernel built with CONFIG_IPC_NS=y"},
		{"cgroup", false, "use a Linux kernel >= 4.6 built with CONFIG_CGROUPS=y"},
		{"time", false, "use a Linux kernel >= 5.6 built with CONFIG_TIME_NS=y"},
		{"user", false, "use a kernel built with CONFIG_USER_NS=y"},
	}
	checks := make([]Check, 0, len(namespaces))
	for _, n := range namespaces {
		name := "kernel: " + n.ns + " namespace"
		path := "/proc/self/ns/" + n.ns
		target, err := os.Readlink(path)
		switch {
		case err == nil && n.required:
			checks = append(checks, passed(name, true, target))
		case err == nil:
			checks = append(checks, informational(name, "available ("+target+")", ""))
		case n.required:
			checks = append(checks, failed(name, true, notFound(path, err), n.fix))
		default:
			checks = append(checks, informational(name, "not available: "+notFound(path, err), n.fix))
		}
	}
	return checks
}

// notFound describes a failed lookup of path, shortly when it does not exist.
func notFound(path string, err error) string {
	if errors.Is(err, os.ErrNotExist) {
		return path + " does not exist"
	}
	return err.Error()
}

// checkOverlay checks that overlayfs is registered in /proc/filesystems,
// loading the module with `modprobe -q overlay` first when it is not.
func (r *runner) checkOverlay(ctx context.Context) []Check {
	const (
		name = "kernel: overlayfs"
		fix  = "load the overlay module (`modprobe overlay`) or use a kernel built with CONFIG_OVERLAY_FS"
	)
	ok, err := hasFilesystem("overlay")
	if err != nil {
		return []Check{failed(name, true, err.Error(), fix)}
	}
	if ok {
		return []Check{passed(name, true, "overlay in /proc/filesystems")}
	}
	modErr := r.modprobe(ctx, "overlay")
	if ok, err = hasFilesystem("overlay"); err != nil {
		return []Check{failed(name, true, err.Error(), fix)}
	}
	if ok {
		return []Check{passed(name, true, "overlay in /proc/filesystems after `modprobe overlay`")}
	}
	detail := "overlay not in /proc/filesystems"
	if modErr != nil {
		detail += "; " + modErr.Error()
	}
	return []Check{failed(name, true, detail, fix)}
}

// hasFilesystem reports whether fstype is listed in /proc/filesystems.
func hasFilesystem(fstype string) (bool, error) {
	f, err := os.Open("/proc/filesystems")
	if err != nil {
		return false, fmt.Errorf("open /proc/filesystems: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Lines are "nodev\toverlay" or "\text4".
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[len(fields)-1] == fstype {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("read /proc/filesystems: %w", err)
	}
	return false, nil
}

// modprobe runs `modprobe -q module`, quietly and with a time limit.
func (r *runner) modprobe(ctx context.Context, module string) error {
	path, err := lookPath("modprobe", "/usr/sbin/modprobe", "/sbin/modprobe")
	if err != nil {
		return fmt.Errorf("modprobe %s: %w", module, err)
	}
	if out, err := runCommand(ctx, r.cmdTimeout, path, "-q", module); err != nil {
		return fmt.Errorf("modprobe %s: %w%s", module, err, outputSuffix(out))
	}
	return nil
}

// lookPath looks name up on PATH and then at each of the fallback paths.
func lookPath(name string, fallbacks ...string) (string, error) {
	path, err := exec.LookPath(name)
	if err == nil {
		return path, nil
	}
	for _, p := range fallbacks {
		if fi, serr := os.Stat(p); serr == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	if errors.Is(err, exec.ErrNotFound) {
		return "", fmt.Errorf("%s not found on PATH", name)
	}
	return "", fmt.Errorf("look up %s: %w", name, err)
}

// checkCheckpointRestore checks for the interfaces CRIU needs from a kernel
// built with CONFIG_CHECKPOINT_RESTORE: /proc/sys/kernel/ns_last_pid and a
// readable /proc/self/map_files.
func checkCheckpointRestore(context.Context) []Check {
	const (
		name = "kernel: checkpoint/restore"
		fix  = "use a kernel built with CONFIG_CHECKPOINT_RESTORE=y"
	)
	if _, err := os.Stat("/proc/sys/kernel/ns_last_pid"); err != nil {
		return []Check{failed(name, true, notFound("/proc/sys/kernel/ns_last_pid", err), fix)}
	}
	const mapFiles = "/proc/self/map_files"
	entries, err := os.ReadDir(mapFiles)
	if err != nil {
		return []Check{failed(name, true, fmt.Sprintf("read %s: %v", mapFiles, err), fix)}
	}
	if len(entries) == 0 {
		return []Check{failed(name, true, mapFiles+" is empty", fix)}
	}
	// Reading the directory is not enough: following its links needs
	// CAP_SYS_ADMIN (or CAP_CHECKPOINT_RESTORE).
	link := filepath.Join(mapFiles, entries[0].Name())
	if _, err := os.Readlink(link); err != nil {
		return []Check{failed(name, true, fmt.Sprintf("read %s: %v", link, err),
			fix+", and run podctl as root")}
	}
	return []Check{passed(name, true,
		fmt.Sprintf("ns_last_pid present, %s readable (%d mappings)", mapFiles, len(entries)))}
}

// checkUserfaultfd checks that the userfaultfd system call works. CRIU's
// post-copy (lazy pages) migration needs it.
func checkUserfaultfd(context.Context) []Check {
	const (
		name = "kernel: userfaultfd"
		fix  = "use a kernel built with CONFIG_USERFAULTFD=y (without it live migration is unavailable)"
	)
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, uintptr(unix.O_CLOEXEC|unix.O_NONBLOCK), 0, 0)
	if errno != 0 {
		detail := fmt.Sprintf("userfaultfd(2): %v", errno)
		switch errno {
		case unix.ENOSYS:
			detail += " (not built into this kernel)"
		case unix.EPERM:
			detail += " (vm.unprivileged_userfaultfd=0 and no CAP_SYS_PTRACE)"
			return []Check{failed(name, false, detail, "run podctl as root")}
		}
		return []Check{failed(name, false, detail, fix)}
	}
	if err := unix.Close(int(fd)); err != nil {
		return []Check{failed(name, false, fmt.Sprintf("close userfaultfd: %v", err), fix)}
	}
	return []Check{passed(name, false, "available (needed for live migration: post-copy / lazy pages)")}
}

// checkSoftDirty checks whether the kernel tracks soft-dirty pages
// (CONFIG_MEM_SOFT_DIRTY), which CRIU's pre-copy migration (pre-dump,
// --track-mem) needs. The probe writes to an anonymous page after clearing
// the soft-dirty bits and looks at the page's soft-dirty bit in pagemap.
func checkSoftDirty(context.Context) []Check {
	const name = "kernel: soft-dirty tracking"
	ok, err := softDirtyWorks()
	switch {
	case err != nil:
		return []Check{failed(name, false, "probe failed: "+err.Error(), "")}
	case ok:
		return []Check{informational(name, "available: pre-copy migration (criu pre-dump) possible", "")}
	default:
		return []Check{informational(name, "not available: live migration uses post-copy (lazy pages)", "")}
	}
}

// pagemapSoftDirty and pagemapPresent are bits of a /proc/PID/pagemap entry
// (Documentation/admin-guide/mm/pagemap.rst).
const (
	pagemapSoftDirty = 1 << 55
	pagemapPresent   = 1 << 63
)

// softDirtyWorks reports whether a page written after "echo 4 >
// /proc/self/clear_refs" shows up as soft-dirty in /proc/self/pagemap.
func softDirtyWorks() (bool, error) {
	pageSize := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return false, fmt.Errorf("mmap: %w", err)
	}
	defer unix.Munmap(mem)
	mem[0] = 1 // fault the page in

	cr, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0)
	if err != nil {
		return false, fmt.Errorf("open clear_refs: %w", err)
	}
	_, err = cr.WriteString("4") // CLEAR_REFS_SOFT_DIRTY
	if cerr := cr.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("write 4 to /proc/self/clear_refs: %w", err)
	}
	mem[0] = 2 // this write must mark the page soft-dirty again

	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return false, fmt.Errorf("open pagemap: %w", err)
	}
	defer pm.Close()
	addr := uintptr(unsafe.Pointer(&mem[0]))
	var buf [8]byte
	if _, err := pm.ReadAt(buf[:], int64(addr/uintptr(pageSize))*8); err != nil {
		return false, fmt.Errorf("read /proc/self/pagemap at %#x: %w", addr, err)
	}
	runtime.KeepAlive(mem)
	entry := binary.NativeEndian.Uint64(buf[:])
	if entry&pagemapPresent == 0 {
		return false, fmt.Errorf("written page at %#x not present in pagemap (entry %#x)", addr, entry)
	}
	return entry&pagemapSoftDirty != 0, nil
}

// checkIPForward reports whether IPv4 forwarding is enabled. It is
// informational: podctl enables it when a pod network needs it.
func checkIPForward(context.Context) []Check {
	const (
		name = "network: ip forwarding"
		path = "/proc/sys/net/ipv4/ip_forward"
	)
	b, err := os.ReadFile(path)
	if err != nil {
		return []Check{failed(name, false, fmt.Sprintf("read %s: %v", path, err), "")}
	}
	switch v := strings.TrimSpace(string(b)); v {
	case "1":
		return []Check{informational(name, "enabled (net.ipv4.ip_forward=1)", "")}
	case "0":
		return []Check{informational(name, "disabled (net.ipv4.ip_forward=0); podctl enables it when needed", "")}
	default:
		return []Check{informational(name, "net.ipv4.ip_forward="+v, "")}
	}
}

// checkQEMU reports which qemu-user emulators are on PATH; podctl needs them
// to run pods built for other architectures.
func checkQEMU(context.Context) []Check {
	emulators := []string{
		"qemu-aarch64-static",
		"qemu-riscv64-static",
		"qemu-s390x-static",
		"qemu-ppc64le-static",
		"qemu-loongarch64-static",
	}
	checks := make([]Check, 0, len(emulators))
	for _, e := range emulators {
		name := "qemu-user: " + e
		if path, err := exec.LookPath(e); err == nil {
			checks = append(checks, informational(name, path, ""))
		} else {
			checks = append(checks, informational(name, "not found on PATH", "apt-get install qemu-user-static"))
		}
	}
	return checks
}
