package wasi

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"
)

// errno is a WASI preview 1 error number, the result of every function
// but proc_exit.
type errno uint16

// The WASI preview 1 error numbers this package returns. Their values are
// fixed by the ABI (wasi_snapshot_preview1 "errno"); wazero's
// internal/wasip1 has the full list.
const (
	errnoSuccess     errno = 0
	errno2big        errno = 1
	errnoAcces       errno = 2
	errnoAgain       errno = 6
	errnoBadf        errno = 8
	errnoBusy        errno = 10
	errnoDquot       errno = 19
	errnoExist       errno = 20
	errnoFault       errno = 21
	errnoFbig        errno = 22
	errnoIntr        errno = 27
	errnoInval       errno = 28
	errnoIo          errno = 29
	errnoIsdir       errno = 31
	errnoLoop        errno = 32
	errnoMfile       errno = 33
	errnoMlink       errno = 34
	errnoNametoolong errno = 37
	errnoNfile       errno = 41
	errnoNoent       errno = 44
	errnoNomem       errno = 48
	errnoNospc       errno = 51
	errnoNosys       errno = 52
	errnoNotdir      errno = 54
	errnoNotempty    errno = 55
	errnoNotsup      errno = 58
	errnoNxio        errno = 60
	errnoOverflow    errno = 61
	errnoPerm        errno = 63
	errnoPipe        errno = 64
	errnoRange       errno = 68
	errnoRofs        errno = 69
	errnoSpipe       errno = 70
	errnoStale       errno = 72
	errnoTxtbsy      errno = 74
	errnoXdev        errno = 75
)

// hostErrnos maps the host's error numbers to WASI's. It is a list rather
// than a switch because some of these names share a value on some hosts.
var hostErrnos = [...]struct {
	host syscall.Errno
	wasi errno
}{
	{syscall.E2BIG, errno2big},
	{syscall.EACCES, errnoAcces},
	{syscall.EAGAIN, errnoAgain},
	{syscall.EBADF, errnoBadf},
	{syscall.EBUSY, errnoBusy},
	{syscall.EDQUOT, errnoDquot},
	{syscall.EEXIST, errnoExist},
	{syscall.EFAULT, errnoFault},
	{syscall.EFBIG, errnoFbig},
	{syscall.EINTR, errnoIntr},
	{syscall.EINVAL, errnoInval},
	{syscall.EIO, errnoIo},
	{syscall.EISDIR, errnoIsdir},
	{syscall.ELOOP, errnoLoop},
	{syscall.EMFILE, errnoMfile},
	{syscall.EMLINK, errnoMlink},
	{syscall.ENAMETOOLONG, errnoNametoolong},
	{syscall.ENFILE, errnoNfile},
	{syscall.ENOENT, errnoNoent},
	{syscall.ENOMEM, errnoNomem},
	{syscall.ENOSPC, errnoNospc},
	{syscall.ENOSYS, errnoNosys},
	{syscall.ENOTDIR, errnoNotdir},
	{syscall.ENOTEMPTY, errnoNotempty},
	{syscall.ENOTSUP, errnoNotsup},
	{syscall.ENXIO, errnoNxio},
	{syscall.EOVERFLOW, errnoOverflow},
	{syscall.EPERM, errnoPerm},
	{syscall.EPIPE, errnoPipe},
	{syscall.ERANGE, errnoRange},
	{syscall.EROFS, errnoRofs},
	{syscall.ESPIPE, errnoSpipe},
	{syscall.ETXTBSY, errnoTxtbsy},
	{syscall.EXDEV, errnoXdev},
}

// toErrno returns the WASI error number for err, an error from the os
// package or os.Root. A path that os.Root refuses because it would leave
// the root (through "..", an absolute or an escaping symlink) is EPERM, as
// wazero answers for a path escaping a preopen.
func toErrno(err error) errno {
	if err == nil {
		return errnoSuccess
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		for _, m := range hostErrnos {
			if m.host == en {
				return m.wasi
			}
		}
	}
	switch {
	case isEscape(err):
		return errnoPerm
	case errors.Is(err, fs.ErrNotExist):
		return errnoNoent
	case errors.Is(err, fs.ErrExist):
		return errnoExist
	case errors.Is(err, fs.ErrPermission):
		return errnoAcces
	case errors.Is(err, fs.ErrInvalid):
		return errnoInval
	case errors.Is(err, fs.ErrClosed):
		return errnoBadf
	case errors.Is(err, errors.ErrUnsupported):
		return errnoNotsup
	}
	return errnoIo
}

// isEscape reports whether err is os.Root's refusal of a path that leads
// out of the root. The os package does not export that error, so it is
// recognised by its text.
func isEscape(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.HasSuffix(e.Error(), "path escapes from parent") {
			return true
		}
	}
	return false
}
