//go:build linux

package doctor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cgroupRoot is where the cgroup filesystems are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroupLayout is how the cgroup hierarchies are mounted.
type cgroupLayout int

const (
	// cgroupV1 is one v1 hierarchy per controller (group) under cgroupRoot.
	cgroupV1 cgroupLayout = iota + 1
	// cgroupHybrid is v1 hierarchies plus a v2 hierarchy at
	// cgroupRoot/unified, usually with no controllers enabled.
	cgroupHybrid
	// cgroupV2 is the single v2 hierarchy mounted at cgroupRoot.
	cgroupV2
)

func (l cgroupLayout) String() string {
	switch l {
	case cgroupV1:
		return "v1 (legacy)"
	case cgroupHybrid:
		return "hybrid (v1 controllers, v2 at " + cgroupRoot + "/unified)"
	case cgroupV2:
		return "v2 (unified)"
	default:
		return "unknown"
	}
}

// checkCgroups reports the cgroup layout and whether the memory, pids and
// freezer controllers are available.
func checkCgroups(context.Context) []Check {
	const layoutName = "cgroups: layout"
	controllers := []struct{ name, fix string }{
		{"memory", "use a kernel with CONFIG_MEMCG and do not disable it (cgroup_disable=memory) on the kernel command line"},
		{"pids", "use a kernel with CONFIG_CGROUP_PIDS"},
		{"freezer", "use a kernel with CONFIG_CGROUP_FREEZER (cgroup v1) or Linux >= 5.2 (cgroup v2)"},
	}

	layout, err := detectCgroupLayout(cgroupRoot)
	if err != nil {
		checks := []Check{failed(layoutName, true, err.Error(), "mount the cgroup filesystems (cgroup2 at "+cgroupRoot+")")}
		for _, c := range controllers {
			checks = append(checks, failed("cgroups: "+c.name+" controller", true, "not checked: no cgroup layout", c.fix))
		}
		return checks
	}
	checks := []Check{passed(layoutName, true, layout.String())}

	var find func(controller string) (string, error)
	if layout == cgroupV2 {
		find = func(c string) (string, error) { return findV2Controller(cgroupRoot, c) }
	} else {
		v1, err := newV1Controllers(layout)
		if err != nil {
			find = func(string) (string, error) { return "", err }
		} else {
			find = v1.find
		}
	}
	for _, c := range controllers {
		name := "cgroups: " + c.name + " controller"
		if detail, err := find(c.name); err != nil {
			checks = append(checks, failed(name, true, err.Error(), c.fix))
		} else {
			checks = append(checks, passed(name, true, detail))
		}
	}
	return checks
}

// detectCgroupLayout tells the layout from the filesystem types of root and
// root/unified.
func detectCgroupLayout(root string) (cgroupLayout, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", root, err)
	}
	switch st.Type {
	case unix.CGROUP2_SUPER_MAGIC:
		return cgroupV2, nil
	case unix.CGROUP_SUPER_MAGIC:
		return cgroupV1, nil // a single v1 hierarchy mounted at root
	case unix.TMPFS_MAGIC:
		var ust unix.Statfs_t
		if err := unix.Statfs(filepath.Join(root, "unified"), &ust); err == nil && ust.Type == unix.CGROUP2_SUPER_MAGIC {
			return cgroupHybrid, nil
		}
		return cgroupV1, nil
	default:
		return 0, fmt.Errorf("no cgroup filesystem at %s (filesystem magic %#x)", root, st.Type)
	}
}

// findV2Controller reports whether controller is available in the v2
// hierarchy at root.
func findV2Controller(root, controller string) (string, error) {
	if controller == "freezer" {
		return findV2Freezer(root)
	}
	avail, err := readV2Controllers(root)
	if err != nil {
		return "", err
	}
	if !avail[controller] {
		return "", fmt.Errorf("%s not in %s/cgroup.controllers", controller, root)
	}
	return "in " + root + "/cgroup.controllers", nil
}

// readV2Controllers reads the controllers listed in dir/cgroup.controllers.
func readV2Controllers(dir string) (map[string]bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("read cgroup v2 controllers: %w", err)
	}
	avail := make(map[string]bool)
	for _, c := range strings.Fields(string(b)) {
		avail[c] = true
	}
	return avail, nil
}

// findV2Freezer checks for the cgroup v2 freezer. It is not a controller but
// a core feature of every non-root cgroup (cgroup.freeze, Linux >= 5.2), so
// the probe looks for cgroup.freeze in this process's cgroup or in a child of
// the root, and falls back to the kernel version.
func findV2Freezer(root string) (string, error) {
	dirs := make([]string, 0, 8)
	if own, err := ownV2Cgroup(); err == nil && own != "/" {
		dirs = append(dirs, filepath.Join(root, own))
	}
	if entries, err := os.ReadDir(root); err == nil {
		for _, e := range entries {
			if e.IsDir() {
				dirs = append(dirs, filepath.Join(root, e.Name()))
			}
		}
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "cgroup.freeze")); err == nil {
			return "cgroup v2 freezer (" + filepath.Join(d, "cgroup.freeze") + ")", nil
		}
	}
	release, major, minor, err := kernelVersion()
	if err != nil {
		return "", fmt.Errorf("no cgroup.freeze found under %s: %w", root, err)
	}
	if major > 5 || major == 5 && minor >= 2 {
		return "cgroup v2 freezer (Linux " + release + " >= 5.2)", nil
	}
	return "", fmt.Errorf("no cgroup.freeze under %s and Linux %s < 5.2", root, release)
}

// ownV2Cgroup returns this process's cgroup v2 path ("0::/path" in
// /proc/self/cgroup).
func ownV2Cgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("read own cgroup: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("no cgroup v2 entry in /proc/self/cgroup")
}

// kernelVersion returns the kernel release and its major and minor numbers.
func kernelVersion() (release string, major, minor int, err error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return "", 0, 0, fmt.Errorf("uname: %w", err)
	}
	release = unix.ByteSliceToString(uts.Release[:])
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return release, 0, 0, fmt.Errorf("unrecognized kernel release %q", release)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return release, 0, 0, fmt.Errorf("unrecognized kernel release %q", release)
	}
	return release, major, minor, nil
}

// v1Controllers describes the v1 (and, in the hybrid layout, v2) controllers
// of this host.
type v1Controllers struct {
	mounts  map[string]string // controller -> mount point of its v1 hierarchy
	enabled map[string]bool   // /proc/cgroups "enabled" column
	unified map[string]bool   // controllers of the v2 hierarchy (hybrid only)
}

func newV1Controllers(layout cgroupLayout) (*v1Controllers, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	mounts, err := parseV1CgroupMounts(f)
	if err != nil {
		return nil, fmt.Errorf("parse /proc/self/mountinfo: %w", err)
	}
	v := &v1Controllers{mounts: mounts}
	if pc, err := os.Open("/proc/cgroups"); err == nil {
		v.enabled, _ = parseProcCgroups(pc)
		pc.Close()
	}
	if layout == cgroupHybrid {
		v.unified, _ = readV2Controllers(filepath.Join(cgroupRoot, "unified"))
	}
	return v, nil
}

func (v *v1Controllers) find(controller string) (string, error) {
	if mp, ok := v.mounts[controller]; ok {
		return "cgroup v1 hierarchy at " + mp, nil
	}
	if v.unified[controller] {
		return "in the cgroup v2 hierarchy at " + cgroupRoot + "/unified", nil
	}
	enabled, known := v.enabled[controller]
	switch {
	case !known:
		return "", fmt.Errorf("%s controller not in /proc/cgroups (not built into the kernel)", controller)
	case !enabled:
		return "", fmt.Errorf("%s controller disabled (enabled=0 in /proc/cgroups)", controller)
	default:
		return "", fmt.Errorf("%s controller enabled but no cgroup hierarchy mounted with it (mount -t cgroup -o %s cgroup %s/%s)",
			controller, controller, cgroupRoot, controller)
	}
}

// parseV1CgroupMounts maps each v1 controller to the mount point of its
// hierarchy, from mountinfo(5) lines:
//
//	36 35 0:30 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
func parseV1CgroupMounts(r io.Reader) (map[string]string, error) {
	mounts := make(map[string]string)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(fields) || fields[sep+1] != "cgroup" {
			continue
		}
		mountPoint := fields[4]
		for _, opt := range strings.Split(fields[sep+3], ",") {
			if _, ok := mounts[opt]; !ok {
				mounts[opt] = mountPoint
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return mounts, nil
}

// parseProcCgroups reads the "enabled" column of /proc/cgroups:
//
//	#subsys_name	hierarchy	num_cgroups	enabled
//	memory	4	8	1
func parseProcCgroups(r io.Reader) (map[string]bool, error) {
	enabled := make(map[string]bool)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 4 {
			continue
		}
		enabled[fields[0]] = fields[3] == "1"
	}
	return enabled, sc.Err()
}
