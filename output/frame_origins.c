/* SPDX-License-Identifier: MIT */
#include "output/frame_origins.h"

#include <stdbool.h>
#include <stdlib.h>

#include "lib/grow_array.h"

/* What two origins of one text agree on. */
static void merge(struct frame_origin *kept, struct frame_origin other)
{
	if (kept->file != other.file)
		kept->file = FRAME_ORIGIN_NO_FILE;
	if (kept->start_line != other.start_line)
		kept->start_line = 0;
}

void frame_origins_note(struct frame_origins *o, const char *text, size_t len,
			struct frame_origin origin)
{
	uint64_t id;
	bool added;

	if (string_ids_find(&o->texts, text, len, &id)) {
		merge(&o->items[id], origin);
		return;
	}
	size_t bound = o->max_bytes ? o->max_bytes : FRAME_ORIGINS_MAX_BYTES;
	struct frame_origin *grown = o->text_bytes + len <= bound
		? grow_array(o->items, &o->capacity, o->texts.count + 1, sizeof(*grown), 256)
		: NULL;
	if (grown)
		o->items = grown;
	if (!grown || string_ids_get(&o->texts, text, len, &id, &added) < 0) {
		o->dropped++;
		return;
	}
	o->items[id] = origin;
	o->text_bytes += len;
}

const struct frame_origin *frame_origins_find(const struct frame_origins *o, const char *text,
					      size_t len)
{
	uint64_t id;

	return string_ids_find(&o->texts, text, len, &id) ? &o->items[id] : NULL;
}

void frame_origins_free(struct frame_origins *o)
{
	string_ids_free(&o->texts);
	free(o->items);
	*o = (struct frame_origins){.max_bytes = o->max_bytes};
}
