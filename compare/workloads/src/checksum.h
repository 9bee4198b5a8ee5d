/* The workloads' shared parts: a 64-bit FNV-1a checksum of their result,
 * printed last as "checksum NAME HEX", the same on every ISA, natively
 * and in Wasm; and a seeded xorshift generator for their inputs. */
#ifndef CHECKSUM_H
#define CHECKSUM_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv = 0xcbf29ce484222325ULL;

static inline void sum_bytes(const void *p, size_t n) {
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		fnv ^= b[i];
		fnv *= 0x100000001b3ULL;
	}
}

static inline void sum_u64(uint64_t v) { sum_bytes(&v, sizeof v); }

/* Doubles are summed by their bits: IEEE-754 arithmetic without fused
 * multiply-adds (-ffp-contract=off) gives the same bits everywhere. */
static inline void sum_double(double d) {
	uint64_t v;
	memcpy(&v, &d, sizeof v);
	sum_u64(v);
}

static inline void print_checksum(const char *name) {
	printf("checksum %s %016llx\n", name, (unsigned long long)fnv);
	fflush(stdout);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static inline uint64_t rng(void) {
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

/* size is argv[1]: the workload's size, a positive integer. */
static inline long size_arg(int argc, char **argv, long min) {
	if (argc < 2) {
		fprintf(stderr, "usage: %s SIZE\n", argv[0]);
		exit(2);
	}
	long n = strtol(argv[1], 0, 10);
	if (n < min) {
		fprintf(stderr, "%s: SIZE must be at least %ld\n", argv[0], min);
		exit(2);
	}
	return n;
}

#endif
