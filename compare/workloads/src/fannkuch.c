/* Benchmarks Game fannkuch-redux: the permutations of SIZE elements,
 * their flips counted. */
#include "checksum.h"

int main(int argc, char **argv) {
	int n = size_arg(argc, argv, 3);
	if (n > 12) {
		fprintf(stderr, "fannkuch: SIZE must be at most 12\n");
		return 2;
	}
	int perm[16], perm1[16], count[16];
	int maxflips = 0, r = n;
	long checksum = 0, permcount = 0;
	for (int i = 0; i < n; i++)
		perm1[i] = i;
	for (;;) {
		for (; r != 1; r--)
			count[r - 1] = r;
		for (int i = 0; i < n; i++)
			perm[i] = perm1[i];
		int flips = 0;
		for (int k; (k = perm[0]) != 0; flips++) {
			for (int i = 0, j = k; i < j; i++, j--) {
				int t = perm[i];
				perm[i] = perm[j];
				perm[j] = t;
			}
		}
		if (flips > maxflips)
			maxflips = flips;
		checksum += permcount % 2 == 0 ? flips : -flips;
		for (;;) {
			if (r == n) {
				printf("%ld\nPfannkuchen(%d) = %d\n", checksum, n, maxflips);
				sum_u64((uint64_t)checksum);
				sum_u64((uint64_t)maxflips);
				print_checksum("fannkuch");
				return 0;
			}
			int p0 = perm1[0];
			for (int i = 0; i < r; i++)
				perm1[i] = perm1[i + 1];
			perm1[r] = p0;
			if (--count[r] > 0)
				break;
			r++;
		}
		permcount++;
	}
}
