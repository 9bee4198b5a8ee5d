package budget

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCgroupMemoryLimit(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("system.slice/dock.service/memory.max", "1073741824\n")
	write("other.slice/memory.max", "max\n")
	write("memory/docker/abc/memory.limit_in_bytes", "536870912\n")
	for _, tc := range []struct {
		cgroup string
		want   int64
	}{
		{"0::/system.slice/dock.service\n", 1 << 30},
		{"0::/other.slice\n", 0},
		{"0::/missing\n", 0},
		{"4:memory:/docker/abc\n1:cpu:/\n0::/\n", 512 << 20},
		{"4:cpuacct,memory:/docker/abc\n", 512 << 20},
		{"", 0},
	} {
		if got := cgroupMemoryLimit(root, []byte(tc.cgroup)); got != tc.want {
			t.Errorf("%q: %d, want %d", tc.cgroup, got, tc.want)
		}
	}
}
