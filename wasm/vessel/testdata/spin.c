/* spin: a loop with no calls in it, for ever (the vessel tests stop it). */
#include <stdio.h>

int main(void)
{
	volatile unsigned long long n = 0;
	for (;;)
		n++;
	printf("%llu\n", n); /* never reached */
	return 0;
}
