/*
 * sleep: prints "sleep I" and sleeps MS milliseconds (nanosleep, which
 * wasi-libc makes a poll_oneoff), N times, then "awake".
 *
 * usage: sleep MS N
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
	long ms = argc > 1 ? atol(argv[1]) : 100;
	int n = argc > 2 ? atoi(argv[2]) : 3;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < n; i++) {
		printf("sleep %d\n", i);
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		if (nanosleep(&ts, NULL) != 0) {
			printf("nanosleep failed\n");
			return 1;
		}
	}
	printf("awake\n");
	return 0;
}
