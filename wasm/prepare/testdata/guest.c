// guest.c is the C test guest of package prepare: loops, direct and
// mutual recursion (some of it deep), calls through function pointers
// (qsort and a table of operations), and output that depends on all of
// them. Usage: guest [workload [scale]], workload one of all, fib, deep,
// sieve, sort, ops, mutual, quick (all of them, small), or deepstop (deep
// with far more work at the bottom of the recursion); the exit code is 3.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static unsigned long fib(int n) {
	return n < 2 ? (unsigned long)n : fib(n - 1) + fib(n - 2);
}

static unsigned long sink[64];

// bottom is the fib() computed at the bottom of deep().
static int bottom = 25;

// deep recurses d levels with a real stack frame at each level, does work
// on the way down and on the way back up, and more at the bottom, where a
// stop is then likely to find the whole stack deep.
__attribute__((noinline)) static unsigned long deep(int d, unsigned long acc) {
	char frame[48];
	memset(frame, (int)(acc & 0x7f), sizeof frame);
	if (d == 0)
		return acc + fib(bottom + (int)(acc & 1));
	unsigned long r = deep(d - 1, acc * 31 + (unsigned long)d);
	for (int i = 0; i < (int)sizeof frame; i++)
		r += (unsigned char)frame[i] * (unsigned long)(i + 1);
	sink[d % 64] += r;
	return r ^ (unsigned long)d;
}

__attribute__((noinline)) static int is_odd(unsigned n);
__attribute__((noinline)) static int is_even(unsigned n) { return n == 0 ? 1 : is_odd(n - 1); }
__attribute__((noinline)) static int is_odd(unsigned n) { return n == 0 ? 0 : is_even(n - 1); }

static unsigned op_add(unsigned a, unsigned b) { return a + b; }
static unsigned op_mul(unsigned a, unsigned b) { return a * b + 1; }
static unsigned op_xor(unsigned a, unsigned b) { return (a ^ b) * 2654435761u; }
static unsigned op_rot(unsigned a, unsigned b) { return (a << (b & 31)) | (a >> ((32 - b) & 31)); }
typedef unsigned (*op_t)(unsigned, unsigned);
static op_t ops[] = {op_add, op_mul, op_xor, op_rot};

// apply recurses through a function pointer: the call graph only sees
// this cycle through call_indirect.
static unsigned apply(unsigned depth, unsigned v);
static unsigned via_pointer(unsigned depth, unsigned v) { return apply(depth, v); }
static unsigned (*volatile recurse)(unsigned, unsigned) = via_pointer;
static unsigned apply(unsigned depth, unsigned v) {
	if (depth == 0)
		return v;
	return recurse(depth - 1, ops[v & 3](v, depth)) + 1;
}

static int cmp(const void *a, const void *b) {
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	return x < y ? -1 : x > y;
}

static unsigned long sieve(int n) {
	char *composite = calloc((size_t)n + 1, 1);
	unsigned long count = 0, sum = 0;
	for (int i = 2; i <= n; i++) {
		if (composite[i])
			continue;
		count++;
		sum += (unsigned long)i;
		for (long long j = (long long)i * i; j <= n; j += i)
			composite[j] = 1;
	}
	free(composite);
	return count * 1000003ul + sum;
}

static unsigned long sorted(int n) {
	unsigned *a = malloc(sizeof *a * (size_t)n);
	unsigned x = 12345;
	for (int i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		a[i] = x >> 8;
	}
	qsort(a, (size_t)n, sizeof *a, cmp);
	unsigned long h = 0;
	for (int i = 0; i < n; i++)
		h = h * 31 + a[i];
	free(a);
	return h;
}

static unsigned long run_ops(int n) {
	unsigned v = 1;
	for (int i = 0; i < n; i++)
		v = ops[(v >> 3) & 3](v, (unsigned)i);
	return v + apply(200, v);
}

int main(int argc, char **argv) {
	const char *w = argc > 1 ? argv[1] : "all";
	int scale = argc > 2 ? atoi(argv[2]) : 1;
	int quick = strcmp(w, "quick") == 0;
	int all = quick || strcmp(w, "all") == 0;
	// In quick mode, problem sizes are divided by this.
	int div = quick ? 100 : 1;
	if (all || strcmp(w, "fib") == 0)
		for (int i = 0; i < scale; i++)
			printf("fib(%d) = %lu\n", 24 + i % 3 - (quick ? 8 : 0), fib(24 + i % 3 - (quick ? 8 : 0)));
	if (strcmp(w, "deepstop") == 0)
		bottom = 30;
	if (all || strcmp(w, "deep") == 0 || strcmp(w, "deepstop") == 0) {
		for (int i = 0; i < scale; i++)
			printf("deep = %lu\n", deep(20000 / div + i, (unsigned long)i));
		unsigned long s = 0;
		for (int i = 0; i < 64; i++)
			s = s * 7 + sink[i];
		printf("sink = %lu\n", s);
	}
	if (all || strcmp(w, "mutual") == 0)
		for (int i = 0; i < scale; i++)
			printf("even(%d) = %d\n", 100001 / div + i, is_even(100001u / (unsigned)div + (unsigned)i));
	if (all || strcmp(w, "sieve") == 0)
		for (int i = 0; i < scale; i++)
			printf("sieve = %lu\n", sieve(2000000 / div + i));
	if (all || strcmp(w, "sort") == 0)
		for (int i = 0; i < scale; i++)
			printf("sort = %lu\n", sorted(200000 / div + i));
	if (all || strcmp(w, "ops") == 0)
		for (int i = 0; i < scale; i++)
			printf("ops = %lu\n", run_ops(3000000 / div + i));
	return 3;
}
