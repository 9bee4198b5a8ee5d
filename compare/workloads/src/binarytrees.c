/* Benchmarks Game binary-trees: trees of depth up to SIZE, allocated and
 * checked, and one long-lived tree kept throughout. */
#include "checksum.h"

struct node { struct node *left, *right; };

static struct node *make(int depth) {
	struct node *n = malloc(sizeof *n);
	if (!n) {
		perror("malloc");
		exit(1);
	}
	if (depth > 0) {
		n->left = make(depth - 1);
		n->right = make(depth - 1);
	} else {
		n->left = n->right = 0;
	}
	return n;
}

static long check(const struct node *n) {
	return 1 + (n->left ? check(n->left) + check(n->right) : 0);
}

static void release(struct node *n) {
	if (n->left) {
		release(n->left);
		release(n->right);
	}
	free(n);
}

int main(int argc, char **argv) {
	int max = size_arg(argc, argv, 6);
	struct node *stretch = make(max + 1);
	printf("stretch tree of depth %d\t check: %ld\n", max + 1, check(stretch));
	release(stretch);
	struct node *longlived = make(max);
	for (int d = 4; d <= max; d += 2) {
		long iterations = 1L << (max - d + 4), sum = 0;
		for (long i = 0; i < iterations; i++) {
			struct node *t = make(d);
			sum += check(t);
			release(t);
		}
		printf("%ld\t trees of depth %d\t check: %ld\n", iterations, d, sum);
		sum_u64(sum);
	}
	long ll = check(longlived);
	printf("long lived tree of depth %d\t check: %ld\n", max, ll);
	sum_u64(ll);
	print_checksum("binarytrees");
	return 0;
}
