// spin.c is a guest that spins forever in a loop without calls: only a
// poll point can stop it.
volatile unsigned long counter;

int main(void) {
	for (;;)
		counter++;
}
