//go:build unix

package dock

import "golang.org/x/sys/unix"

// kernelRelease is the running kernel's release ("6.1.0-13-amd64").
func kernelRelease() string {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return ""
	}
	return unix.ByteSliceToString(uts.Release[:])
}
