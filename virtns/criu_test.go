package virtns

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCRIULogError(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ log, want string }{
		{"(00.001) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self\n(00.002) Error (criu/mount.c:1): mnt: bad\n",
			" (dump.log: (00.002) Error (criu/mount.c:1): mnt: bad)"},
		{"(00.080) Error (criu/tty.c:2286): tty: ctty inheritance detected sid/pgrp 10 (ctty pid_real 3 pty pid_real 2)\n",
			" (dump.log: (00.080) Error (criu/tty.c:2286): tty: ctty inheritance detected sid/pgrp 10 (ctty pid_real 3 pty pid_real 2); " + criuHints[0].hint + ")"},
		{"(00.001) all went well\n", ""},
	} {
		path := filepath.Join(dir, "dump.log")
		if err := os.WriteFile(path, []byte(tc.log), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := CRIULogError(path); got != tc.want {
			t.Errorf("CRIULogError(%q) = %q, want %q", tc.log, got, tc.want)
		}
	}
	if got := CRIULogError(filepath.Join(dir, "missing.log")); got != "" {
		t.Errorf("a missing log: %q", got)
	}
}
