/*
 * brk: takes memory the way Go's runtime does on wasm (runtime.sbrk in
 * mem_wasm.go): it keeps a break of its own, starting at the size of
 * memory, and after memory.grow(n) it uses the n pages from its break up
 * as fresh, zero memory, whatever memory.grow returned.
 *
 * It prints "waiting", sleeps until the file /data/go exists, grows
 * memory by PAGES pages (16 by default) and checks that the pages from
 * its break up are zero. A host that stopped it while it waited and put
 * something past the end of memory must have cleared it by then.
 *
 * usage: brk [PAGES]; exits 0 if the pages are zero, 1 if not.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int pages = argc > 1 ? atoi(argv[1]) : 16;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("waiting\n");
	/* Whatever libc allocates to look a path up, it allocates now. */
	access("/data/go", F_OK);
	uintptr_t brk = __builtin_wasm_memory_size(0) * 65536;
	struct timespec ms = {0, 1000000};
	while (access("/data/go", F_OK) != 0)
		nanosleep(&ms, NULL);
	if (__builtin_wasm_memory_grow(0, pages) < 0) {
		printf("memory.grow failed\n");
		return 1;
	}
	const unsigned char *p = (const unsigned char *)brk;
	for (size_t i = 0; i < (size_t)pages * 65536; i++) {
		if (p[i] != 0) {
			printf("byte %zu past the break is %#x, not zero\n", i, p[i]);
			return 1;
		}
	}
	printf("%d fresh pages, all zero\n", pages);
	return 0;
}
