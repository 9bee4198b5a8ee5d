/* An inference-like loop, as llama2.c's forward pass: matrix-vector
 * products of float weights generated from a seed, SIZE tokens through
 * 4 layers of width 1024. */
#include <math.h>
#include "checksum.h"

#define DIM 1024
#define LAYERS 4

static float *weights[LAYERS];

static float uniform(void) { return (float)(rng() >> 40) / (float)(1 << 24) - 0.5f; }

static void matvec(float *out, const float *w, const float *x) {
	for (int i = 0; i < DIM; i++) {
		float s = 0;
		const float *row = w + (long)i * DIM;
		for (int j = 0; j < DIM; j++)
			s += row[j] * x[j];
		out[i] = s;
	}
}

int main(int argc, char **argv) {
	long tokens = size_arg(argc, argv, 1);
	for (int l = 0; l < LAYERS; l++) {
		weights[l] = malloc(sizeof(float) * DIM * DIM);
		if (!weights[l]) {
			perror("malloc");
			return 1;
		}
		for (long i = 0; i < (long)DIM * DIM; i++)
			weights[l][i] = uniform() / 16;
	}
	static float x[DIM], h[DIM];
	for (int i = 0; i < DIM; i++)
		x[i] = uniform();
	for (long t = 0; t < tokens; t++) {
		for (int l = 0; l < LAYERS; l++) {
			matvec(h, weights[l], x);
			/* RMS norm and a SiLU, as a transformer block would. */
			float ss = 0;
			for (int i = 0; i < DIM; i++)
				ss += h[i] * h[i];
			float scale = 1.0f / sqrtf(ss / DIM + 1e-5f);
			for (int i = 0; i < DIM; i++) {
				float v = h[i] * scale;
				x[i] = v / (1.0f + expf(-v));
			}
		}
		sum_bytes(x, sizeof x);
	}
	printf("%ld tokens, x[0] = %.6f\n", tokens, x[0]);
	print_checksum("infer");
	return 0;
}
