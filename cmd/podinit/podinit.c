/*
 * podinit is PID 1 of every pod when it is installed next to podctl: a
 * small, static, single-threaded C program that does exactly what podctl's
 * own Go init (`podctl _podinit`, package virtns/podinit) does, and is
 * started the same way:
 *
 *	/.podctl/init _podinit PATH -- ARGV...
 *
 * It exists for speed. CRIU injects its parasite code into every thread of
 * every process it dumps, and maps, reads and restores every memory area.
 * podctl, a multi-threaded 22 MB Go binary with a 2 MB heap, made the init
 * the costliest process of an idle pod: some 10 ms of the time a pod is
 * frozen, 1.7 MB of its images and 10 ms of its restore. This init has one
 * thread, a few pages and nothing to say beyond its duties:
 *
 *   - become a session leader, so the pod's process tree is self-contained;
 *   - hold no descriptor from the host: stdin is the pod's /dev/null,
 *     stdout and stderr the pod's log, everything else above the report
 *     descriptor is closed;
 *   - start the payload in its own process group, and report on fd 3, in
 *     one JSON line, that it started ({}) or why it did not
 *     ({"error":"...","kind":N}, N an errdefs kind, also the exit status);
 *   - forward SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH
 *     and SIGCONT to the payload's process group;
 *   - reap every orphan, and when the payload itself exits, record its
 *     status (128+N for signal N) in /.podctl/exit and exit with it.
 *
 * Keep it in step with virtns/podinit/podinit.go: the two are
 * interchangeable, and the end-to-end tests run pods under either.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Paths inside the pod, as virtns defines them (InPodDir). */
#define LOG_PATH "/.podctl/pod.log"
#define EXIT_PATH "/.podctl/exit"

/* The descriptor on which podctl waits for the start report. */
#define REPORT_FD 3

/* errdefs kinds (and exit statuses) this init reports. */
enum {
	KIND_INTERNAL = 1,
	KIND_USAGE = 2,
	KIND_NOT_EXECUTABLE = 126,
	KIND_NOT_FOUND = 127,
};

static const int forwarded[] = {
	SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT,
};

/* write_all writes all of buf to fd, retrying after interruptions. */
static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/*
 * report writes the start report: {} for kind 0, otherwise the error text
 * and kind, the text escaped as a JSON string.
 */
static void report(int kind, const char *what, const char *path, int err)
{
	char msg[1024], line[4200];
	size_t n = 0;

	if (kind == 0) {
		write_all(REPORT_FD, "{}\n", 3);
		return;
	}
	snprintf(msg, sizeof msg, "%s%s%s: %s", what, path ? " " : "", path ? path : "", strerror(err));
	n += (size_t)snprintf(line + n, sizeof line - n, "{\"error\":\"");
	for (const unsigned char *p = (const unsigned char *)msg; *p && n < sizeof line - 64; p++) {
		if (*p == '"' || *p == '\\')
			n += (size_t)snprintf(line + n, sizeof line - n, "\\%c", *p);
		else if (*p < 0x20)
			n += (size_t)snprintf(line + n, sizeof line - n, "\\u%04x", *p);
		else
			line[n++] = (char)*p;
	}
	n += (size_t)snprintf(line + n, sizeof line - n, "\",\"kind\":%d}\n", kind);
	write_all(REPORT_FD, line, n);
}

static void fail(int kind, const char *what, const char *path, int err)
{
	report(kind, what, path, err);
	_exit(kind);
}

/* reopen_stdio replaces the host descriptors libcontainer started us with. */
static void reopen_stdio(void)
{
	int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (in < 0)
		fail(KIND_INTERNAL, "open", "/dev/null", errno);
	int out = open(LOG_PATH, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (out < 0)
		fail(KIND_INTERNAL, "open", LOG_PATH, errno);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		fail(KIND_INTERNAL, "dup stdio", NULL, errno);
	close(in);
	close(out);
}

/* close_fds_from closes every descriptor >= lowest. */
static void close_fds_from(int lowest)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 0) == 0)
		return;
#endif
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return;
	int self = dirfd(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fd >= lowest && fd != self)
			close(fd);
	}
	closedir(d);
}

static void write_exit(int status)
{
	char buf[16];
	int fd = open(EXIT_PATH, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	int n = snprintf(buf, sizeof buf, "%d\n", status);
	write_all(fd, buf, (size_t)n);
	close(fd);
}

/*
 * start forks the payload, which resets its signal mask, makes its own
 * process group and executes path. An exec failure comes back over a
 * close-on-exec pipe, so that it is reported before anything else.
 */
static pid_t start(const char *path, char **argv, const sigset_t *mask)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		fail(KIND_INTERNAL, "pipe", NULL, errno);
	pid_t pid = fork();
	if (pid < 0)
		fail(KIND_INTERNAL, "fork", NULL, errno);
	if (pid == 0) {
		close(pfd[0]);
		sigprocmask(SIG_SETMASK, mask, NULL);
		setpgid(0, 0);
		execv(path, argv);
		int err = errno;
		write_all(pfd[1], (const char *)&err, sizeof err);
		_exit(KIND_INTERNAL);
	}
	close(pfd[1]);
	int err;
	ssize_t n;
	do
		n = read(pfd[0], &err, sizeof err);
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n == (ssize_t)sizeof err) {
		waitpid(pid, NULL, 0);
		int kind = KIND_INTERNAL;
		if (err == ENOENT)
			kind = KIND_NOT_FOUND;
		else if (err == EACCES || err == ENOEXEC)
			kind = KIND_NOT_EXECUTABLE;
		fail(kind, "start", path, err);
	}
	return pid;
}

int main(int argc, char **argv)
{
	if (argc < 5 || strcmp(argv[1], "_podinit") != 0 || strcmp(argv[3], "--") != 0) {
		fprintf(stderr, "podinit: usage: podinit _podinit PATH -- ARGV...\n");
		return KIND_USAGE;
	}
	const char *path = argv[2];
	fcntl(REPORT_FD, F_SETFD, FD_CLOEXEC);

	/*
	 * Signals are taken synchronously (sigwaitinfo), so they are blocked
	 * before anything can send one. The kernel drops signals a PID 1 has
	 * no handler for, but not blocked ones: they stay pending.
	 */
	sigset_t waited, old;
	sigemptyset(&waited);
	for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
		sigaddset(&waited, forwarded[i]);
	sigaddset(&waited, SIGCHLD);
	sigprocmask(SIG_BLOCK, &waited, &old);

	/* In a new PID namespace the init leads no group yet; EPERM means it does. */
	if (setsid() < 0 && errno != EPERM)
		fail(KIND_INTERNAL, "setsid", NULL, errno);
	reopen_stdio();
	close_fds_from(REPORT_FD + 1);

	pid_t payload = start(path, argv + 4, &old);
	report(0, NULL, NULL, 0);
	close(REPORT_FD);

	for (;;) {
		siginfo_t si;
		if (sigwaitinfo(&waited, &si) < 0)
			continue;
		if (si.si_signo != SIGCHLD) {
			/* The payload runs in its own group: a shell's children stop too. */
			kill(-payload, si.si_signo);
			continue;
		}
		for (;;) {
			int ws;
			pid_t pid = waitpid(-1, &ws, WNOHANG);
			if (pid <= 0)
				break;
			if (pid == payload) {
				int status = WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : WEXITSTATUS(ws);
				write_exit(status);
				return status;
			}
		}
	}
}
