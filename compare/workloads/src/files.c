/* A file workload: SIZE rounds of appends, seeks and overwrites, and
 * renames, in the data directory DIR (argv[2]), whose final state is the
 * result: files in it are checksummed in name order. */
#include <dirent.h>
#include "checksum.h"

static void path(char *out, size_t n, const char *dir, const char *name) {
	snprintf(out, n, "%s/%s", dir, name);
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
	long rounds = size_arg(argc, argv, 1);
	if (argc < 3) {
		fprintf(stderr, "usage: %s SIZE DIR\n", argv[0]);
		return 2;
	}
	const char *dir = argv[2];
	char p[4096], q[4096];
	static unsigned char block[4096];
	for (long r = 0; r < rounds; r++) {
		int f = (int)(r % 8);
		char name[32];
		snprintf(name, sizeof name, "log-%d", f);
		path(p, sizeof p, dir, name);
		FILE *fp = fopen(p, "a+b");
		if (!fp) {
			perror(p);
			return 1;
		}
		for (size_t i = 0; i < sizeof block; i++)
			block[i] = (unsigned char)(rng() >> 56);
		fwrite(block, 1, sizeof block, fp);
		fclose(fp);
		/* Overwrite 16 bytes somewhere in the file. */
		fp = fopen(p, "r+b");
		if (!fp) {
			perror(p);
			return 1;
		}
		fseek(fp, 0, SEEK_END);
		long size = ftell(fp);
		fseek(fp, (long)(rng() % (uint64_t)(size - 16)), SEEK_SET);
		fwrite(block, 1, 16, fp);
		fclose(fp);
		if (r % 16 == 15) {
			/* Rotate: log-F becomes old-F, replacing the last one. */
			snprintf(name, sizeof name, "old-%d", f);
			path(q, sizeof q, dir, name);
			if (rename(p, q) != 0) {
				perror("rename");
				return 1;
			}
		}
	}
	DIR *d = opendir(dir);
	if (!d) {
		perror(dir);
		return 1;
	}
	char *names[64];
	int count = 0;
	for (struct dirent *e; (e = readdir(d)) && count < 64;) {
		if (e->d_name[0] != '.')
			names[count++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, count, sizeof names[0], cmp);
	for (int i = 0; i < count; i++) {
		path(p, sizeof p, dir, names[i]);
		FILE *fp = fopen(p, "rb");
		if (!fp) {
			perror(p);
			return 1;
		}
		sum_bytes(names[i], strlen(names[i]));
		size_t n;
		while ((n = fread(block, 1, sizeof block, fp)) > 0)
			sum_bytes(block, n);
		fclose(fp);
	}
	printf("%ld rounds, %d files\n", rounds, count);
	print_checksum("files");
	return 0;
}
