/* A generated graph for the graph kernels: SIZE vertices, 8 out-edges
 * each to vertices drawn from a skewed (RMAT-like) distribution, in
 * compressed sparse row form. */
#ifndef GRAPH_H
#define GRAPH_H

#include "checksum.h"

#define DEGREE 8

struct graph {
	long n;
	long *offsets; /* n+1 */
	int32_t *edges; /* n*DEGREE */
};

static inline void *xmalloc(size_t n) {
	void *p = malloc(n);
	if (!p) {
		perror("malloc");
		exit(1);
	}
	return p;
}

/* skewed draws a vertex: each bit of the index is 1 with probability
 * 1/4, so that low vertices are hubs, as in GAPBS's Kronecker graphs. */
static inline long skewed(long n) {
	long v = 0;
	for (long bit = 1; bit < n; bit <<= 1) {
		if ((rng() & 3) == 0)
			v |= bit;
	}
	return v % n;
}

static inline struct graph generate(long n) {
	struct graph g = {n, xmalloc((n + 1) * sizeof(long)), xmalloc(n * DEGREE * sizeof(int32_t))};
	for (long v = 0; v <= n; v++)
		g.offsets[v] = v * DEGREE;
	for (long e = 0; e < n * DEGREE; e++)
		g.edges[e] = (int32_t)skewed(n);
	return g;
}

#endif
