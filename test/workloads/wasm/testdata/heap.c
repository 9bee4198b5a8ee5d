/*
 * heap: memory-heavy workload with a growing heap, for WebAssembly vessel
 * tests. Linear memory grows (memory.grow, through malloc) all through
 * the run, up to about 48 MiB of live data.
 *
 * It keeps 64 blocks whose every 64-bit word is a known function of the
 * block's seed and the word's index, so that any word can be checked.
 * Each round grows some blocks with realloc (writing their new words),
 * frees a few and starts them again small, appends to a vector that
 * doubles with realloc, then checks a sample of every block and all of
 * one block, and prints a line. Half way, and at the end, it checks
 * everything.
 *
 * Exits 0; 1 if a word does not hold what was written there.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 64
#define ROUNDS 32
#define TARGET (40u << 20) /* live bytes in blocks at the end */

struct block {
	uint64_t *w;
	size_t n; /* words */
	uint64_t seed;
};

static struct block blocks[SLOTS];
static uint32_t *vec;
static size_t vec_len, vec_cap;
static size_t live;
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t rng(void)
{
	rng_state = splitmix(rng_state);
	return rng_state;
}

static uint64_t word(const struct block *b, size_t i)
{
	return (b->seed ^ (i * 0xd6e8feb86659fd93ULL)) * 0xff51afd7ed558ccdULL;
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q) {
		printf("out of memory (%zu bytes)\n", n);
		exit(2);
	}
	return q;
}

static void grow(struct block *b, size_t words)
{
	b->w = xrealloc(b->w, (b->n + words) * sizeof(uint64_t));
	for (size_t i = b->n; i < b->n + words; i++)
		b->w[i] = word(b, i);
	b->n += words;
	live += words * sizeof(uint64_t);
}

static void drop(struct block *b)
{
	live -= b->n * sizeof(uint64_t);
	free(b->w);
	b->w = NULL;
	b->n = 0;
	b->seed = rng();
}

static void bad(int slot, size_t i)
{
	printf("block %d word %zu corrupt\n", slot, i);
	exit(1);
}

static uint64_t hash_block(int slot, size_t stride)
{
	const struct block *b = &blocks[slot];
	uint64_t h = 0xcbf29ce484222325ULL ^ b->n;
	for (size_t i = 0; i < b->n; i += stride) {
		if (b->w[i] != word(b, i))
			bad(slot, i);
		h = (h ^ b->w[i]) * 0x100000001b3ULL;
	}
	return h;
}

static void push(uint32_t v)
{
	if (vec_len == vec_cap) {
		vec_cap = vec_cap ? vec_cap * 2 : 1024;
		vec = xrealloc(vec, vec_cap * sizeof *vec);
	}
	vec[vec_len++] = v;
}

int main(void)
{
	uint64_t total = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("heap: start\n");
	for (int s = 0; s < SLOTS; s++)
		blocks[s].seed = rng();

	for (int r = 0; r < ROUNDS; r++) {
		size_t target = (size_t)TARGET / ROUNDS * (r + 1);
		int freed = 0, grown = 0;

		/* Free a few blocks: their space is reused by later growth. */
		for (int k = 0; k < 3; k++) {
			struct block *b = &blocks[rng() % SLOTS];
			if (b->n) {
				drop(b);
				freed++;
			}
		}
		/* Grow blocks until the live size reaches the target. */
		while (live < target) {
			size_t words = 512 + rng() % (64 * 1024);
			if (words * 8 > target - live)
				words = (target - live) / 8 + 1;
			grow(&blocks[rng() % SLOTS], words);
			grown++;
		}
		/* The vector: 64 Ki more entries each round, up to 8 MiB. */
		for (int k = 0; k < 64 * 1024; k++)
			push((uint32_t)(rng() >> 32));

		uint64_t h = 0;
		for (int s = 0; s < SLOTS; s++)
			h = (h ^ hash_block(s, 61)) * 0x100000001b3ULL;
		int full = (int)(rng() % SLOTS);
		h ^= hash_block(full, 1);
		if (r == ROUNDS / 2) {
			for (int s = 0; s < SLOTS; s++)
				h = (h ^ hash_block(s, 1)) * 0x100000001b3ULL;
			uint64_t vh = 0;
			for (size_t i = 0; i < vec_len; i++)
				vh = (vh ^ vec[i]) * 0x100000001b3ULL;
			h ^= vh;
		}
		total = splitmix(total ^ h);
		printf("round %d live=%zu vector=%zu grown=%d freed=%d hash=%016llx\n",
		       r, live, vec_len, grown, freed, (unsigned long long)h);
	}

	/* Shrink everything back, checking as we go. */
	for (int s = 0; s < SLOTS; s++) {
		total = splitmix(total ^ hash_block(s, 1));
		drop(&blocks[s]);
	}
	free(vec);
	printf("heap: live=%zu checksum=%016llx\n", live, (unsigned long long)total);
	return 0;
}
