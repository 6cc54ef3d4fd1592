/*
 * usage_fmt.c - dsfsctl usage -h and --json: the figures of store_usage()
 * ("LAYER USED BUDGET" lines, from the files or from the daemon) shown as
 * df(1) shows them, in human units, or as one JSON document.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsfsctl.h"
#include "progress.h"

static void print_line(FILE *out, bool json, bool first, const char *layer,
		       uint64_t used, uint64_t budget)
{
	uint64_t avail = used < budget ? budget - used : 0;
	unsigned pct = budget ? (unsigned)((used * 100 + budget - 1) / budget) :
				0;
	char s[16], u[16], a[16];

	if (json) {
		fprintf(out,
			"%s\n  {\"layer\": \"%s\", \"used\": %llu, "
			"\"budget\": %llu, \"available\": %llu}",
			first ? "" : ",", layer, (unsigned long long)used,
			(unsigned long long)budget, (unsigned long long)avail);
		return;
	}
	human_size(budget, s, sizeof(s));
	human_size(used, u, sizeof(u));
	human_size(avail, a, sizeof(a));
	fprintf(out, "%-10s %6s %6s %6s %4u%%\n", layer, s, u, a, pct);
}

int usage_main(int argc, char **argv, struct store_error *e)
{
	bool json = false, hum = false, first = true;
	const char *store = NULL;
	char *text = NULL, *line, *save = NULL;
	size_t len = 0;
	FILE *m;
	int i, rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--human") == 0)
			hum = true;
		else if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (argv[i][0] != '-' && !store)
			store = argv[i];
		else
			return -EINVAL;
	}
	if (!store || (json && hum))
		return -EINVAL;
	m = open_memstream(&text, &len);
	if (!m)
		return store_fail(e, -ENOMEM, "out of memory");
	rc = store_usage(store, m, e);
	fclose(m);
	if (rc == 0 && hum)
		printf("%-10s %6s %6s %6s %5s\n", "layer", "size", "used",
		       "avail", "use%");
	if (rc == 0 && json)
		fputs("[", stdout);
	line = rc == 0 ? strtok_r(text, "\n", &save) : NULL;
	for (; line; line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' '), *end = NULL, *end2 = NULL;
		unsigned long long used = 0, budget = 0;

		if (sp) {
			*sp = '\0';
			errno = 0;
			used = strtoull(sp + 1, &end, 10);
			if (end && *end == ' ')
				budget = strtoull(end + 1, &end2, 10);
		}
		if (!sp || errno || !end2 || *end2 || end2 == end + 1) {
			rc = store_fail(e, -EPROTO, "usage: unexpected '%s'",
					line);
			break;
		}
		print_line(stdout, json, first, line, used, budget);
		first = false;
	}
	if (rc == 0 && json)
		fputs("\n]\n", stdout);
	free(text);
	return rc;
}
