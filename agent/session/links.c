// SPDX-License-Identifier: MIT
/* Detaching many BPF links at once: see links.h. */
#include <pthread.h>
#include <stdbool.h>

#include <bpf/libbpf.h>

#include "links.h"

#define LINKS_PARALLEL 16

static void *destroy_one(void *arg)
{
	bpf_link__destroy(arg);
	return NULL;
}

void ls_links_destroy(struct bpf_link **links[], size_t n)
{
	size_t i = 0;

	while (i < n) {
		pthread_t th[LINKS_PARALLEL];
		bool started[LINKS_PARALLEL] = { false };
		size_t k, batch = n - i < LINKS_PARALLEL ? n - i : LINKS_PARALLEL;

		for (k = 0; k < batch; k++) {
			struct bpf_link *link = *links[i + k];

			*links[i + k] = NULL;
			if (!link)
				continue;
			started[k] = pthread_create(&th[k], NULL, destroy_one, link) == 0;
			if (!started[k])
				bpf_link__destroy(link);
		}
		for (k = 0; k < batch; k++)
			if (started[k])
				pthread_join(th[k], NULL);
		i += batch;
	}
}
