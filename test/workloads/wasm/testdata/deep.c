/*
 * deep: deep recursion for WebAssembly vessel tests. Linked with an 8 MiB
 * stack (-Wl,-z,stack-size=8388608).
 *
 * Each of three passes recurses DEPTH (50,000) frames deep. Every frame
 * keeps a small array on the C stack (in linear memory, below
 * __stack_pointer) and its own locals on the engine's stack; it does a
 * little work on the way down, more at the bottom (in four parts, a line
 * after each), and some on the way up, where it folds in what the frames
 * below returned and checks that its array survived. Progress lines are
 * printed from inside the recursion, every DEPTH/10 frames going down and
 * coming up, so a stop at most of them has a deep stack to save; at the
 * bottom, all 50,000 frames.
 *
 * Exits 0; 1 if a frame's array was overwritten.
 */
#include <stdint.h>
#include <stdio.h>

#define DEPTH 50000
#define PASSES 3
#define STEP (DEPTH / 10)
#define BOTTOM 100000

static volatile uint32_t sink;
static int max_depth;

__attribute__((noinline)) static void fill(uint32_t *a, int n, uint32_t seed)
{
	for (int i = 0; i < n; i++) {
		seed = seed * 1664525u + 1013904223u;
		a[i] = seed;
	}
}

__attribute__((noinline)) static uint32_t fold(const uint32_t *a, int n)
{
	uint32_t h = 2166136261u;
	for (int i = 0; i < n; i++)
		h = (h ^ a[i]) * 16777619u;
	return h;
}

__attribute__((noinline)) static uint32_t bottom(uint32_t seed, int pass)
{
	/* The work at the bottom: Collatz lengths, in four parts. */
	uint32_t sum = 0, n = BOTTOM + BOTTOM / 4 * (uint32_t)pass;
	for (int part = 0; part < 4; part++) {
		for (uint32_t i = part * n / 4; i < (part + 1) * n / 4; i++) {
			uint64_t x = (i ^ (seed & 0xff)) + 1;
			while (x != 1) {
				x = (x & 1) ? 3 * x + 1 : x / 2;
				sum++;
			}
		}
		printf("pass %d bottom part=%d work=%u\n", pass, part, (unsigned)sum);
	}
	return sum;
}

__attribute__((noinline)) static uint32_t down(int depth, uint32_t seed, int pass)
{
	uint32_t a[6];
	fill(a, 6, seed + (uint32_t)depth);
	uint32_t mine = fold(a, 6);
	if (depth > max_depth)
		max_depth = depth;
	if (depth % STEP == 0)
		printf("pass %d down depth=%d seed=%08x\n", pass, depth, (unsigned)mine);

	uint32_t below;
	if (depth == DEPTH) {
		below = bottom(mine, pass);
	} else {
		below = down(depth + 1, mine ^ seed, pass);
	}

	/* On the way up: a little work, and a check of this frame's array. */
	uint32_t h = below;
	for (int k = 0; k < 24; k++)
		h = (h ^ (uint32_t)k ^ a[k % 6]) * 16777619u + (h >> 13);
	if (fold(a, 6) != mine) {
		printf("pass %d depth %d: frame overwritten\n", pass, depth);
		sink = 1;
		return 0;
	}
	if (depth % STEP == 0)
		printf("pass %d up depth=%d hash=%08x\n", pass, depth, (unsigned)h);
	return h;
}

int main(void)
{
	uint32_t total = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("deep: start depth=%d\n", DEPTH);
	for (int pass = 0; pass < PASSES; pass++) {
		uint32_t h = down(0, 0x12345678u * (uint32_t)(pass + 1), pass);
		total = (total ^ h) * 16777619u;
		printf("pass %d result=%08x\n", pass, (unsigned)h);
	}
	if (sink)
		return 1;
	printf("deep: max depth=%d checksum=%08x\n", max_depth, (unsigned)total);
	return 0;
}
