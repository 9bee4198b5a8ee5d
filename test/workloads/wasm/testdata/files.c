/*
 * files: file I/O in a preopened directory, for WebAssembly vessel tests.
 *
 * Usage: files [DIR]  (DIR defaults to /data; it must start empty)
 *
 * It fills DIR with an input file and a subdirectory of small files, then
 * keeps four descriptors open for the whole run:
 *   - log.txt, write-only in append mode (O_APPEND): a line per step, some
 *     written after seeking to 0, which must still land at the end;
 *   - table.bin, read/write: records read and rewritten in place with
 *     lseek, read/write at the current offset (which carries over from one
 *     step to the next), and pread/pwrite;
 *   - input.bin, read-only, read in 4 KiB chunks from start to end;
 *   - sub/, a directory stream (opendir/readdir), a few entries per step.
 * Between I/O it computes (hashing what it read). Along the way it creates,
 * renames and removes other files. At the end it writes summary.txt and
 * prints a digest of everything.
 *
 * Directory order is the host's: only order-independent facts about the
 * entries (their count and a sum of hashes of their names) are printed.
 *
 * Exits 0; 1 on any I/O error or unexpected content.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STEPS 40
#define SUBFILES 120 /* 3 readdir entries per step */
#define CHUNK 4096
#define INPUT_SIZE (STEPS * 3 * CHUNK + 1234)
#define RECORDS 4096
#define RECSIZE 16

static char dir[256];

static void die(const char *what, const char *path)
{
	printf("files: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static const char *at(const char *name)
{
	static char buf[2][512];
	static int which;
	which ^= 1;
	snprintf(buf[which], sizeof buf[which], "%s/%s", dir, name);
	return buf[which];
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 0x100000001b3ULL;
	return h;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

static void writeall(int fd, const void *p, size_t n, const char *what)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w <= 0)
			die("write", what);
		c += w;
		n -= (size_t)w;
	}
}

static size_t readfull(int fd, void *p, size_t n, const char *what)
{
	char *c = p;
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, c + got, n - got);
		if (r < 0)
			die("read", what);
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return got;
}

static void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("create", path);
	writeall(fd, p, n, path);
	if (close(fd) != 0)
		die("close", path);
}

static uint64_t hash_file(const char *path, off_t *size)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die("open", path);
	char buf[8192];
	uint64_t h = 0xcbf29ce484222325ULL;
	ssize_t r;
	*size = 0;
	while ((r = read(fd, buf, sizeof buf)) > 0) {
		h = fnv(h, buf, (size_t)r);
		*size += r;
	}
	if (r < 0)
		die("read", path);
	close(fd);
	return h;
}

/* compute: CPU work between I/O, seeded by what was read. */
static uint64_t compute(uint64_t h, int rounds)
{
	for (int i = 0; i < rounds; i++)
		h = mix(h + (uint64_t)i);
	return h;
}

int main(int argc, char **argv)
{
	static unsigned char input[INPUT_SIZE];
	char name[64], line[160];
	uint64_t digest = 0, names = 0;
	int entries = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(dir, sizeof dir, "%s", argc > 1 ? argv[1] : "/data");
	printf("files: start in %s\n", dir);

	/* Setup: the input file and the subdirectory. */
	uint64_t s = 42;
	for (size_t i = 0; i < sizeof input; i++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		input[i] = (unsigned char)(s >> 56);
	}
	write_file(at("input.bin"), input, sizeof input);
	if (mkdir(at("sub"), 0755) != 0)
		die("mkdir", at("sub"));
	for (int i = 0; i < SUBFILES; i++) {
		snprintf(name, sizeof name, "sub/entry-%04d.dat", i);
		int n = snprintf(line, sizeof line, "entry %d of %d\n", i, SUBFILES);
		write_file(at(name), line, (size_t)n);
		if (i % 24 == 23)
			printf("files: setup: %d files in sub\n", i + 1);
	}
	if (mkdir(at("out"), 0755) != 0)
		die("mkdir", at("out"));
	printf("files: setup done: input %d bytes, %d files in sub\n", INPUT_SIZE, SUBFILES);

	/* The descriptors kept open for the whole run. */
	int logfd = open(at("log.txt"), O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (logfd < 0)
		die("open", at("log.txt"));
	int tab = open(at("table.bin"), O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (tab < 0)
		die("open", at("table.bin"));
	int in = open(at("input.bin"), O_RDONLY);
	if (in < 0)
		die("open", at("input.bin"));
	DIR *d = opendir(at("sub"));
	if (!d)
		die("opendir", at("sub"));

	unsigned char rec[RECSIZE];
	for (int i = 0; i < RECORDS; i++) {
		uint64_t v = mix((uint64_t)i);
		memcpy(rec, &v, 8);
		v = ~v;
		memcpy(rec + 8, &v, 8);
		writeall(tab, rec, RECSIZE, "table.bin");
	}
	/* The table's offset is now at its end: start the walk at 0. */
	if (lseek(tab, 0, SEEK_SET) != 0)
		die("lseek", "table.bin");

	for (int step = 0; step < STEPS; step++) {
		uint64_t h = digest ^ (uint64_t)step;

		/* input.bin: three chunks from the current offset. */
		unsigned char chunk[CHUNK];
		for (int k = 0; k < 3; k++) {
			size_t got = readfull(in, chunk, CHUNK, "input.bin");
			if (got != CHUNK) {
				printf("files: short read of input.bin at step %d: %zu\n", step, got);
				return 1;
			}
			h = fnv(h, chunk, got);
		}
		off_t inpos = lseek(in, 0, SEEK_CUR);
		if (memcmp(chunk, input + inpos - CHUNK, CHUNK) != 0) {
			printf("files: input.bin content wrong at %lld\n", (long long)inpos);
			return 1;
		}
		h = compute(h, 250000);

		/* table.bin: the record at the current offset (left there by the
		 * previous step), then a record chosen by the hash, rewritten in
		 * place, then one more read at the offset that leaves. */
		off_t here = lseek(tab, 0, SEEK_CUR);
		if (readfull(tab, rec, RECSIZE, "table.bin") != RECSIZE)
			die("read", "table.bin");
		h = fnv(h, rec, RECSIZE);
		h = fnv(h, &here, sizeof here);
		for (int k = 0; k < 8; k++) {
			off_t pos = (off_t)(mix(h + (uint64_t)k) % RECORDS) * RECSIZE;
			if (lseek(tab, pos, SEEK_SET) != pos)
				die("lseek", "table.bin");
			if (readfull(tab, rec, RECSIZE, "table.bin") != RECSIZE)
				die("read", "table.bin");
			uint64_t a, b;
			memcpy(&a, rec, 8);
			memcpy(&b, rec + 8, 8);
			a = mix(a ^ h);
			b += (uint64_t)step;
			memcpy(rec, &a, 8);
			memcpy(rec + 8, &b, 8);
			if (lseek(tab, -RECSIZE, SEEK_CUR) != pos)
				die("lseek", "table.bin");
			writeall(tab, rec, RECSIZE, "table.bin");
			h = fnv(h, rec, RECSIZE);
		}
		/* pread/pwrite do not move the offset. */
		off_t fixed = (off_t)(step % 16) * RECSIZE;
		if (pread(tab, rec, RECSIZE, fixed) != RECSIZE)
			die("pread", "table.bin");
		rec[step % RECSIZE] ^= (unsigned char)(step + 1);
		if (pwrite(tab, rec, RECSIZE, fixed) != RECSIZE)
			die("pwrite", "table.bin");
		if (readfull(tab, rec, RECSIZE, "table.bin") != RECSIZE) {
			/* At the end of the table: wrap around. */
			lseek(tab, 0, SEEK_SET);
		}
		h = fnv(h, rec, RECSIZE);
		h = compute(h, 250000);

		/* sub/: three entries, each file checked. */
		for (int k = 0; k < SUBFILES / STEPS;) {
			errno = 0;
			struct dirent *e = readdir(d);
			if (!e) {
				printf("files: readdir ended early at step %d (%s)\n", step, strerror(errno));
				return 1;
			}
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			int num;
			if (sscanf(e->d_name, "entry-%d.dat", &num) != 1) {
				printf("files: unexpected entry %s\n", e->d_name);
				return 1;
			}
			snprintf(name, sizeof name, "sub/%s", e->d_name);
			int fd = open(at(name), O_RDONLY);
			if (fd < 0)
				die("open", at(name));
			char want[64], got[64] = {0};
			int n = snprintf(want, sizeof want, "entry %d of %d\n", num, SUBFILES);
			if (readfull(fd, got, sizeof got - 1, name) != (size_t)n || strcmp(got, want) != 0) {
				printf("files: %s holds %s\n", name, got);
				return 1;
			}
			close(fd);
			names += mix(fnv(0xcbf29ce484222325ULL, e->d_name, strlen(e->d_name)));
			entries++;
			k++;
		}

		/* Files made, renamed and removed along the way. */
		if (step % 5 == 4) {
			int n = snprintf(line, sizeof line, "made at step %d: %016llx\n", step, (unsigned long long)h);
			snprintf(name, sizeof name, "out/tmp-%02d.txt", step);
			write_file(at(name), line, (size_t)n);
			char to[64];
			snprintf(to, sizeof to, "out/kept-%02d.txt", step);
			if (step % 10 == 4) {
				if (rename(at(name), at(to)) != 0)
					die("rename", at(name));
			} else if (unlink(at(name)) != 0) {
				die("unlink", at(name));
			}
		}

		/* log.txt: every fifth line written after seeking to 0. */
		if (step % 5 == 0 && lseek(logfd, 0, SEEK_SET) != 0)
			die("lseek", "log.txt");
		int n = snprintf(line, sizeof line, "step %02d in@%lld tab@%lld h=%016llx\n", step,
				 (long long)inpos, (long long)here, (unsigned long long)h);
		writeall(logfd, line, (size_t)n, "log.txt");

		struct stat st, lt;
		if (fstat(tab, &st) != 0 || fstat(logfd, &lt) != 0)
			die("fstat", "table.bin/log.txt");
		digest = mix(digest ^ h);
		printf("step %d in@%lld tab@%lld table=%lld log=%lld entries=%d h=%016llx\n", step,
		       (long long)inpos, (long long)lseek(tab, 0, SEEK_CUR), (long long)st.st_size,
		       (long long)lt.st_size, entries, (unsigned long long)h);
	}

	/* The rest: input to its end, the directory to its end. */
	unsigned char rest[CHUNK];
	size_t got = readfull(in, rest, sizeof rest, "input.bin");
	if (got != INPUT_SIZE % CHUNK || readfull(in, rest, sizeof rest, "input.bin") != 0) {
		printf("files: input.bin tail: %zu bytes\n", got);
		return 1;
	}
	struct dirent *e;
	errno = 0;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			printf("files: extra entry %s\n", e->d_name);
			return 1;
		}
	}
	if (errno != 0)
		die("readdir", at("sub"));
	closedir(d);
	close(in);
	close(tab);
	close(logfd);
	if (entries != SUBFILES) {
		printf("files: %d entries in sub, want %d\n", entries, SUBFILES);
		return 1;
	}

	off_t lsize, tsize;
	uint64_t lh = hash_file(at("log.txt"), &lsize);
	uint64_t th = hash_file(at("table.bin"), &tsize);
	int n = snprintf(line, sizeof line, "log %lld %016llx\ntable %lld %016llx\nnames %016llx\ndigest %016llx\n",
			 (long long)lsize, (unsigned long long)lh, (long long)tsize, (unsigned long long)th,
			 (unsigned long long)names, (unsigned long long)digest);
	write_file(at("summary.txt"), line, (size_t)n);
	printf("files: log=%lld/%016llx table=%lld/%016llx names=%016llx\n", (long long)lsize,
	       (unsigned long long)lh, (long long)tsize, (unsigned long long)th, (unsigned long long)names);
	printf("files: digest=%016llx\n", (unsigned long long)digest);
	return 0;
}
