/* A redis-like key-value store: SIZE MiB of 1 KiB values in an open
 * addressing hash table, then rounds of lookups, deletes and inserts. */
#include "checksum.h"

#define VALUE 1024

struct slot {
	uint64_t key; /* 0: empty, 1: deleted */
	unsigned char *value;
};

static struct slot *table;
static uint64_t mask;

static struct slot *find(uint64_t key, int insert) {
	uint64_t i = (key * 0x9e3779b97f4a7c15ULL) & mask;
	struct slot *tomb = 0;
	for (;; i = (i + 1) & mask) {
		struct slot *s = &table[i];
		if (s->key == key)
			return s;
		if (s->key == 1 && !tomb)
			tomb = s;
		if (s->key == 0)
			return insert ? (tomb ? tomb : s) : 0;
	}
}

static void fill(unsigned char *v, uint64_t key) {
	for (int i = 0; i < VALUE; i += 8) {
		uint64_t x = key * (i + 1) ^ 0xa5a5a5a5a5a5a5a5ULL;
		memcpy(v + i, &x, 8);
	}
}

/* insert_new inserts a key that is not in the table yet, with its value,
 * and returns it. */
static uint64_t insert_new(void) {
	uint64_t key;
	do
		key = rng();
	while (key < 2 || find(key, 0));
	struct slot *s = find(key, 1);
	s->key = key;
	if (!(s->value = malloc(VALUE))) {
		perror("malloc");
		exit(1);
	}
	fill(s->value, key);
	return key;
}

int main(int argc, char **argv) {
	long mib = size_arg(argc, argv, 1);
	long count = mib * (1024 * 1024 / VALUE);
	uint64_t slots = 1;
	while (slots < (uint64_t)count * 2)
		slots <<= 1;
	mask = slots - 1;
	table = calloc(slots, sizeof *table);
	uint64_t *keys = malloc(count * sizeof *keys);
	if (!table || !keys) {
		perror("malloc");
		return 1;
	}
	for (long i = 0; i < count; i++)
		keys[i] = insert_new();
	printf("%ld keys, %ld MiB of values\n", count, mib);
	for (int round = 0; round < 4; round++) {
		long hits = 0;
		for (long i = 0; i < count; i++) {
			long k = (long)(rng() % (uint64_t)count);
			struct slot *s = find(keys[k], 0);
			if (s) {
				hits++;
				sum_bytes(s->value + (i % VALUE), 8);
			}
			if (i % 8 == 0 && s) {
				/* Replace the key: delete, then insert a new one. */
				free(s->value);
				s->value = 0;
				s->key = 1;
				keys[k] = insert_new();
			}
		}
		printf("round %d: %ld hits\n", round, hits);
		sum_u64(hits);
	}
	print_checksum("kv");
	return 0;
}
