// vfork counts, in a loop that spends half its time waiting in vfork(2):
// each round its vfork child sleeps 20 ms before it exits (as a slow exec
// would), then it sleeps 20 ms itself and prints the round's number. A
// pod frozen at a random moment has a process in vfork every other time.
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap(void) {
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
}

int main(void) {
	for (unsigned long i = 1;; i++) {
		pid_t child = vfork();
		if (child == 0) {
			nap();
			_exit(0);
		}
		if (child < 0) {
			perror("vfork");
			return 1;
		}
		waitpid(child, NULL, 0);
		nap();
		printf("%lu\n", i);
		fflush(stdout);
	}
}
