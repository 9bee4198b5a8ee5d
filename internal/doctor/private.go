//go:build linux

package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// checkPrivate warns about each of dirs that others than its owner can
// read, write or enter: podctl's state root holds every pod's state and
// its PKI directory the keys that make a host a trusted dock.
func checkPrivate(dirs []string) []Check {
	var checks []Check
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		name := "files: " + dir
		st, err := os.Stat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			checks = append(checks, passed(name, false, "does not exist yet (podctl makes it 0700)"))
		case err != nil:
			checks = append(checks, failed(name, false, err.Error(), ""))
		case st.Mode().Perm()&0o077 != 0:
			checks = append(checks, failed(name, false,
				fmt.Sprintf("others can reach it (mode %04o)", st.Mode().Perm()),
				fmt.Sprintf("chmod 700 %s", dir)))
		default:
			checks = append(checks, passed(name, false, fmt.Sprintf("private (mode %04o)", st.Mode().Perm())))
		}
	}
	return checks
}
