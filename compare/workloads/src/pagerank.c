/* A GAPBS-like PageRank: 20 pull iterations over a generated graph of
 * SIZE vertices. */
#include "graph.h"

int main(int argc, char **argv) {
	long n = size_arg(argc, argv, 16);
	struct graph g = generate(n);
	double *rank = xmalloc(n * sizeof(double)), *next = xmalloc(n * sizeof(double));
	const double damping = 0.85;
	for (long v = 0; v < n; v++)
		rank[v] = 1.0 / n;
	for (int it = 0; it < 20; it++) {
		for (long v = 0; v < n; v++)
			next[v] = 0;
		/* Push along out-edges: every vertex has DEGREE of them. */
		for (long v = 0; v < n; v++) {
			double share = rank[v] / DEGREE;
			for (long e = g.offsets[v]; e < g.offsets[v + 1]; e++)
				next[g.edges[e]] += share;
		}
		double delta = 0;
		for (long v = 0; v < n; v++) {
			double r = (1 - damping) / n + damping * next[v];
			delta += r > rank[v] ? r - rank[v] : rank[v] - r;
			rank[v] = r;
		}
		printf("iteration %d: change %.3e\n", it, delta);
	}
	for (long v = 0; v < n; v++)
		sum_double(rank[v]);
	print_checksum("pagerank");
	return 0;
}
