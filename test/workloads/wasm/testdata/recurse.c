/*
 * recurse: recursive compute for WebAssembly vessel tests.
 *
 * Part 1 counts N-queens solutions with a plain recursive backtracker
 * (one stack frame per row), split by the column of the first queen so
 * that each sub-result is a progress line. Part 2 builds random
 * expression trees from a fixed seed (malloc'd nodes) and evaluates them
 * recursively modulo a prime. Everything is integer arithmetic, so the
 * output is the same on every engine and host.
 *
 * Exits with code 3 on success (to test exit-code propagation); 1 if a
 * known N-queens count comes out wrong.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAXN 16

static int cols[MAXN], d1[2 * MAXN], d2[2 * MAXN];

static uint64_t queens(int n, int row)
{
	if (row == n)
		return 1;
	uint64_t count = 0;
	for (int c = 0; c < n; c++) {
		if (cols[c] || d1[row + c] || d2[row - c + n])
			continue;
		cols[c] = d1[row + c] = d2[row - c + n] = 1;
		count += queens(n, row + 1);
		cols[c] = d1[row + c] = d2[row - c + n] = 0;
	}
	return count;
}

/* Solutions with the first queen in column c. */
static uint64_t queens_first(int n, int c)
{
	cols[c] = d1[c] = d2[n - c] = 1;
	uint64_t r = queens(n, 1);
	cols[c] = d1[c] = d2[n - c] = 0;
	return r;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h * 0x100000001b3ULL;
}

/* Expression trees. */
#define P 1000000007ULL

struct node {
	int op; /* 0 leaf, 1 add, 2 mul, 3 sub, 4 pow-ish */
	uint64_t val;
	struct node *l, *r;
};

static uint64_t rng_state;

static uint32_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static long nodes;

static struct node *build(int depth)
{
	struct node *n = malloc(sizeof *n);
	if (!n) {
		printf("out of memory\n");
		exit(2);
	}
	nodes++;
	if (depth == 0 || rng() % 8 == 0) {
		n->op = 0;
		n->val = rng() % P;
		n->l = n->r = NULL;
		return n;
	}
	n->op = 1 + rng() % 4;
	n->val = 0;
	n->l = build(depth - 1);
	n->r = build(depth - 1);
	return n;
}

static uint64_t eval(const struct node *n)
{
	if (n->op == 0)
		return n->val;
	uint64_t a = eval(n->l), b = eval(n->r);
	switch (n->op) {
	case 1:
		return (a + b) % P;
	case 2:
		return a * b % P;
	case 3:
		return (a + P - b) % P;
	default: {
		/* a^(b mod 64) mod P by repeated squaring */
		uint64_t e = b % 64, r = 1;
		while (e) {
			if (e & 1)
				r = r * a % P;
			a = a * a % P;
			e >>= 1;
		}
		return r;
	}
	}
}

static int height(const struct node *n)
{
	if (n->op == 0)
		return 0;
	int a = height(n->l), b = height(n->r);
	return 1 + (a > b ? a : b);
}

static void release(struct node *n)
{
	if (n->op != 0) {
		release(n->l);
		release(n->r);
	}
	free(n);
}

int main(void)
{
	static const uint64_t known[] = {1, 1, 0, 0, 2, 10, 4, 40, 92, 352, 724, 2680, 14200};
	uint64_t sum = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("recurse: start\n");

	for (int n = 4; n <= 9; n++) {
		uint64_t r = queens(n, 0);
		sum = mix(sum, r);
		printf("queens n=%d solutions=%llu\n", n, (unsigned long long)r);
	}
	for (int n = 10; n <= 12; n++) {
		uint64_t total = 0;
		/* Mirror symmetry would halve this: we want the work. */
		for (int c = 0; c < n; c++) {
			uint64_t r = queens_first(n, c);
			total += r;
			sum = mix(sum, r);
			printf("queens n=%d first=%d solutions=%llu\n", n, c, (unsigned long long)r);
		}
		printf("queens n=%d solutions=%llu\n", n, (unsigned long long)total);
		if (total != known[n]) {
			printf("queens n=%d: want %llu\n", n, (unsigned long long)known[n]);
			return 1;
		}
	}

	rng_state = 0x853c49e6748fea9bULL;
	for (int t = 0; t < 12; t++) {
		nodes = 0;
		struct node *root = build(18);
		uint64_t v = eval(root);
		int h = height(root);
		sum = mix(sum, v);
		sum = mix(sum, (uint64_t)nodes);
		printf("tree %d nodes=%ld height=%d value=%llu\n", t, nodes, h, (unsigned long long)v);
		release(root);
	}

	printf("recurse: checksum=%016llx\n", (unsigned long long)sum);
	return 3;
}
