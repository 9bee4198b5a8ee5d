/* A GAPBS-like breadth-first search: the depth of every vertex of a
 * generated graph of SIZE vertices, from 16 sources in turn. */
#include "graph.h"

int main(int argc, char **argv) {
	long n = size_arg(argc, argv, 16);
	struct graph g = generate(n);
	int32_t *depth = xmalloc(n * sizeof(int32_t));
	int32_t *queue = xmalloc(n * sizeof(int32_t));
	for (int s = 0; s < 16; s++) {
		long source = (long)(rng() % (uint64_t)n), reached = 0;
		for (long v = 0; v < n; v++)
			depth[v] = -1;
		long head = 0, tail = 0;
		depth[source] = 0;
		queue[tail++] = (int32_t)source;
		while (head < tail) {
			int32_t v = queue[head++];
			reached++;
			for (long e = g.offsets[v]; e < g.offsets[v + 1]; e++) {
				int32_t w = g.edges[e];
				if (depth[w] < 0) {
					depth[w] = depth[v] + 1;
					queue[tail++] = w;
				}
			}
		}
		sum_bytes(depth, n * sizeof(int32_t));
		printf("source %ld: %ld vertices reached\n", source, reached);
	}
	print_checksum("bfs");
	return 0;
}
