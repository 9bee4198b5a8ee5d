// Package wasi is a virtualized WASI preview 1 system interface
// ("wasi_snapshot_preview1") for wazero whose whole state is held here, so
// that it can be exported as a snapshot.WASIState and rebuilt from one on
// another host, whatever its CPU or operating system.
//
// wazero's own implementation (imports/wasi_snapshot_preview1) keeps its
// descriptor table and clocks inside the runtime, out of reach. This one
// follows its behaviour and error numbers, with the differences noted
// below, and keeps everything in a System:
//
//	s, err := wasi.New(wasi.Config{Args: args, Preopens: dirs, Stdout: w})
//	mod, err := s.Instantiate(ctx, runtime) // before the guest
//	...
//	st, err := s.State()              // with the guest stopped
//	s2, err := wasi.Restore(cfg, st)  // elsewhere, into empty directories
//
// # What moves
//
//   - The arguments and environment.
//   - The monotonic clock: it is virtual, and continues after a move from
//     where it stood, never going backwards. The CPU-time clocks read the
//     same clock. The realtime clock is the host's.
//   - The preopened directories, with their whole contents: regular files,
//     directories and symlinks, with contents, permission bits (setuid,
//     setgid and sticky included) and modification times. A symlink's
//     time is restored where the host can set it (not on Windows, say).
//   - The descriptor table: every file and directory opened below a
//     preopen, by path, with its number, offset, fdflags, whether it was
//     opened for reading and writing, and the rights path_open was given;
//     and the next descriptor number. Descriptors opened at or below a
//     path the guest renames follow the rename, so they stay movable. A
//     directory listing is re-read after a move; fd_readdir lists entries
//     in lexical order, so a cookie keeps meaning the same entry if the
//     directory did not change.
//
// # What does not
//
// State fails, with an error wrapping ErrNotMovable, rather than return a
// snapshot that would rebuild into something the guest could tell apart:
//
//   - a descriptor whose file was unlinked, or whose path now names another
//     file (replaced or renamed by the host, or renamed over by the guest);
//   - a device, FIFO or socket in a preopen;
//   - two hard links to one file within the preopens, or overlapping
//     preopens (a snapshot holds each path's contents separately; a link to
//     a file outside the preopens is not seen and becomes a copy);
//   - a standard stream closed, or renumbered away from fds 0-2, or
//     another descriptor renumbered onto them.
//
// Hard links and overlapping preopens are found by inode number, which
// the os package gives on Unix only: elsewhere they are not detected.
//
// Not kept at all, by design: what the guest wrote to standard output and
// error (the caller keeps it), what it has not yet read from standard
// input, access and change times (filestat reports the modification time
// for all three), inode and device numbers (the host's), file ownership,
// and the fdflags of the standard streams, which accept
// fd_fdstat_set_flags but always report none, so that a guest sees the
// same before and after a move.
//
// # Differences from wazero
//
//   - Paths are confined with os.Root: "..", absolute paths and symlinks
//     that lead out of a preopen (absolute symlinks included) are refused
//     with EPERM. wazero refuses ".." and absolute paths with EPERM too,
//     but follows symlinks wherever they lead.
//   - A final symlink opened without symlink_follow is ELOOP, as POSIX.
//   - path_rename and path_link across preopens are EXDEV (wazero: ENOSYS);
//     path_rename replaces an empty directory as POSIX says.
//   - Preopens cannot be closed or renumbered (ENOTSUP).
//   - fd_fdstat_get reports the rights a descriptor can use (by its type and
//     whether it was opened for reading and writing; wazero reports them
//     all), so wasi-libc's fcntl(F_GETFL) tells O_WRONLY from O_RDWR; and
//     the fdflags it has. fd_fdstat_set_flags changes append and nonblock.
//     The standard streams are block devices, as wazero makes streams
//     that are not host files: not terminals, to isatty or to Go's
//     os.ModeCharDevice test.
//   - fd_readdir lists entries in lexical order rather than the host's.
//   - poll_oneoff takes absolute clock subscriptions, and stops sleeping
//     when the call's context is done (closing the module as wazero's
//     WithCloseOnContextDone does). A Waiter, if configured, does the
//     sleeping, so that a host can unwind the guest from it. Descriptor
//     subscriptions are ready at once.
//   - There are no sockets: sock_accept, sock_recv, sock_send and
//     sock_shutdown are ENOTSUP (EBADF for a descriptor not open), since a
//     socket could not move.
//
// Guest pointers and lengths are checked against memory, as wazero does
// (EFAULT, errno 21).
package wasi
