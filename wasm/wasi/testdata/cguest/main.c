// The C (wasi-libc) test guest of package wasi, built with
// clang --target=wasm32-wasi by the tests. Everything it prints, its exit
// code and the files it leaves must be the same under any correct WASI.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) {
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void show(const char *what, int ret) {
	printf("%s: %d %s\n", what, ret, ret < 0 ? strerror(errno) : "ok");
}

int main(int argc, char **argv) {
	char buf[256];
	for (int i = 0; i < argc; i++)
		printf("arg %d: %s\n", i, argv[i]);
	printf("FOO=%s\n", getenv("FOO"));
	printf("isatty: %d %d\n", isatty(0), isatty(1));

	FILE *f = fopen("/c.txt", "w+");
	fputs("hello from c\n", f);
	fseek(f, 6, SEEK_SET);
	fgets(buf, sizeof buf, f);
	printf("fgets: %s", buf);
	fclose(f);

	int fd = open("/c.txt", O_WRONLY | O_APPEND);
	printf("append flag: %d\n", (fcntl(fd, F_GETFL) & O_APPEND) != 0);
	lseek(fd, 0, SEEK_SET);
	write(fd, "more\n", 5);
	close(fd);

	fd = open("/c.txt", O_RDWR);
	pwrite(fd, "J", 1, 0);
	ssize_t n = pread(fd, buf, 5, 0);
	printf("pread: %.*s\n", (int)n, buf);
	printf("size: %lld\n", (long long)lseek(fd, 0, SEEK_END));
	ftruncate(fd, 4);
	struct stat st;
	fstat(fd, &st);
	printf("fstat: size %lld regular %d\n", (long long)st.st_size, S_ISREG(st.st_mode));
	close(fd);

	show("mkdir", mkdir("/cd", 0755));
	for (int i = 0; i < 60; i++) {
		snprintf(buf, sizeof buf, "/cd/file-%02d-%.*s", i, i, "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
		close(open(buf, O_CREAT | O_WRONLY, 0644));
	}
	show("symlink", symlink("file-00-", "/cd/link"));
	show("rename", rename("/cd/file-01-y", "/cd/renamed"));
	show("unlink", unlink("/cd/file-02-yy"));
	DIR *d = opendir("/cd");
	char *names[100];
	int count = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && count < 100) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			names[count++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, count, sizeof names[0], cmp);
	printf("entries: %d first %s last %s\n", count, names[0], names[count - 1]);
	n = readlink("/cd/link", buf, sizeof buf);
	printf("readlink: %.*s\n", (int)n, buf);
	show("lstat", lstat("/cd/link", &st));
	printf("is link: %d\n", S_ISLNK(st.st_mode));
	show("stat", stat("/cd/link", &st));
	printf("is regular: %d\n", S_ISREG(st.st_mode));

	show("open missing", open("/missing", O_RDONLY));
	show("mkdir existing", mkdir("/cd", 0755));
	show("rmdir non-empty", rmdir("/cd"));
	show("rmdir file", rmdir("/c.txt"));
	show("unlink dir", unlink("/cd"));
	show("open dir for writing", open("/cd", O_WRONLY));
	show("open escaping", open("/../etc/passwd", O_RDONLY));

	struct timespec a, b, sleep = {0, 10 * 1000 * 1000};
	clock_gettime(CLOCK_MONOTONIC, &a);
	nanosleep(&sleep, NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("monotonic increasing: %d\n", b.tv_sec > a.tv_sec || (b.tv_sec == a.tv_sec && b.tv_nsec > a.tv_nsec));
	unsigned char r[16] = {0};
	int ok = getentropy(r, sizeof r) == 0;
	int nonzero = 0;
	for (int i = 0; i < 16; i++)
		nonzero |= r[i];
	printf("entropy: %d %d\n", ok, nonzero != 0);
	fflush(stdout);
	return 5;
}
