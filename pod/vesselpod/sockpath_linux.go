package vesselpod

import (
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxSocketPath is the longest path a Unix socket address holds
// (sizeof(sun_path) less the terminating NUL).
const maxSocketPath = 107

// socketPath returns a path by which to bind or connect to the Unix
// socket at path, and a function to call once that is done. A path too
// long for a socket address (a pod housing a vessel is reached through
// its root filesystem, deep in the state root) is reached through a file
// descriptor of its directory: /proc/self/fd/N/NAME.
func socketPath(path string) (string, func(), error) {
	if len(path) <= maxSocketPath {
		return path, func() {}, nil
	}
	fd, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
	}
	return "/proc/self/fd/" + strconv.Itoa(fd) + "/" + filepath.Base(path), func() { unix.Close(fd) }, nil
}
