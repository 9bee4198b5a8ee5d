/* Benchmarks Game mandelbrot: a SIZE x SIZE bitmap of the set. */
#include "checksum.h"

int main(int argc, char **argv) {
	long n = size_arg(argc, argv, 8);
	long rowbytes = (n + 7) / 8;
	unsigned char *row = malloc(rowbytes);
	if (!row) {
		perror("malloc");
		return 1;
	}
	long set = 0;
	for (long y = 0; y < n; y++) {
		memset(row, 0, rowbytes);
		double ci = 2.0 * y / n - 1.0;
		for (long x = 0; x < n; x++) {
			double cr = 2.0 * x / n - 1.5, zr = 0, zi = 0, tr = 0, ti = 0;
			int i = 0;
			for (; i < 50 && tr + ti <= 4.0; i++) {
				zi = 2.0 * zr * zi + ci;
				zr = tr - ti + cr;
				tr = zr * zr;
				ti = zi * zi;
			}
			if (tr + ti <= 4.0) {
				row[x / 8] |= 0x80 >> (x % 8);
				set++;
			}
		}
		sum_bytes(row, rowbytes);
	}
	printf("%ld points of %ld x %ld in the set\n", set, n, n);
	print_checksum("mandelbrot");
	return 0;
}
