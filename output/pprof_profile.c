/* SPDX-License-Identifier: MIT */
#include "output/pprof_profile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/grow_array.h"
#include "lib/strbuf.h"
#include "output/gzip_file.h"
#include "output/pprof_frame.h"
#include "output/protobuf_writer.h"
#include "output/string_ids.h"
#include "output/utf8_text.h"

/* Field numbers of profile.proto. */
enum {
	PROFILE_SAMPLE_TYPE = 1, PROFILE_SAMPLE = 2, PROFILE_MAPPING = 3, PROFILE_LOCATION = 4,
	PROFILE_FUNCTION = 5, PROFILE_STRING_TABLE = 6, PROFILE_TIME_NANOS = 9,
	PROFILE_DURATION_NANOS = 10, PROFILE_PERIOD_TYPE = 11, PROFILE_PERIOD = 12,
	VALUE_TYPE_TYPE = 1, VALUE_TYPE_UNIT = 2,
	SAMPLE_LOCATION_ID = 1, SAMPLE_VALUE = 2, SAMPLE_LABEL = 3,
	LABEL_KEY = 1, LABEL_STR = 2, LABEL_NUM = 3,
	MAPPING_ID = 1, MAPPING_MEMORY_START = 2, MAPPING_MEMORY_LIMIT = 3, MAPPING_FILE_OFFSET = 4,
	MAPPING_FILENAME = 5, MAPPING_BUILD_ID = 6, MAPPING_HAS_FUNCTIONS = 7,
	LOCATION_ID = 1, LOCATION_MAPPING_ID = 2, LOCATION_ADDRESS = 3, LOCATION_LINE = 4,
	LINE_FUNCTION_ID = 1, LINE_LINE = 2,
	FUNCTION_ID = 1, FUNCTION_NAME = 2, FUNCTION_SYSTEM_NAME = 3, FUNCTION_FILENAME = 4,
	FUNCTION_START_LINE = 5,
};

#define KERNEL_MAPPING "[kernel.kallsyms]" /* the name perf and pprof give the kernel */
#define JIT_NAME_SUFFIX "_[j]"

/* Functions, locations and mappings are written to the profile when first met; each table maps
 * its key to the number (id - 1) it was given. */
struct pprof_builder {
	struct pb_buf profile;
	struct pb_buf key;     /* scratch: a composite key */
	struct string_ids strings, functions, locations, mappings;
	uint64_t *stack;       /* location ids of the line being written */
	size_t depth, stack_capacity;
	bool lua_lines;
	size_t value_count;    /* per Sample: the count, then (CPU profiles) count x period */
	const struct pprof_file *files;
	size_t file_count;
	const struct frame_origins *origins;
};

/* s[0..len) as a string_table entry: proto3 strings must be UTF-8, frame names are untrusted
 * bytes, so each byte that is not part of a printable character becomes U+FFFD (as in the SVG). */
static void write_string_entry(struct pprof_builder *b, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t out_len = 0, replacement = strlen(UTF8_REPLACEMENT);

	for (size_t i = 0; i < len;) {
		size_t n = utf8_printable_length(u + i, len - i);

		out_len += n ? n : replacement;
		i += n ? n : 1;
	}
	if (out_len == len) {
		pb_bytes(&b->profile, PROFILE_STRING_TABLE, s, len);
		return;
	}
	char *clean = malloc(out_len); /* at most 3 * len: no overflow for a string in memory */
	if (!clean) {
		b->profile.failed = true;
		return;
	}
	for (size_t i = 0, o = 0; i < len;) {
		size_t n = utf8_printable_length(u + i, len - i);

		memcpy(clean + o, n ? s + i : UTF8_REPLACEMENT, n ? n : replacement);
		o += n ? n : replacement;
		i += n ? n : 1;
	}
	pb_bytes(&b->profile, PROFILE_STRING_TABLE, clean, out_len);
	free(clean);
}

/* The string table index of s[0..len), added to the table when new. */
static uint64_t string_id(struct pprof_builder *b, const char *s, size_t len)
{
	uint64_t id = 0;
	bool added;

	if (string_ids_get(&b->strings, s, len, &id, &added) < 0)
		b->profile.failed = true;
	else if (added)
		write_string_entry(b, s, len);
	return id;
}

/* The id (number + 1) of key in table; *added when new. 0 when out of memory. */
static uint64_t object_id(struct pprof_builder *b, struct string_ids *table, bool *added)
{
	uint64_t n = 0;

	*added = false;
	if (b->key.failed || string_ids_get(table, b->key.data, b->key.len, &n, added) < 0) {
		b->profile.failed = true;
		return 0;
	}
	return n + 1;
}

/* The file named basename[0..len), or NULL when no file or files of several paths have it (a
 * frame names its file by base name only). */
static const struct pprof_file *file_named(const struct pprof_builder *b, const char *basename,
					   size_t len)
{
	const struct pprof_file *found = NULL;

	for (size_t i = 0; i < b->file_count; i++) {
		const struct pprof_file *f = &b->files[i];

		if (!f->basename || strlen(f->basename) != len ||
		    memcmp(f->basename, basename, len) != 0)
			continue;
		if (found && strcmp(found->path, f->path) != 0)
			return NULL;
		found = f;
	}
	return found;
}

/* What a Mapping says of a known file: its path, build ID (hex, as pprof writes it) and range. */
static void write_file_fields(struct pprof_builder *b, struct pb_buf *msg,
			      const struct pprof_file *f)
{
	struct strbuf hex = {0};

	pb_uint64(msg, MAPPING_MEMORY_START, f->start);
	pb_uint64(msg, MAPPING_MEMORY_LIMIT, f->limit);
	pb_uint64(msg, MAPPING_FILE_OFFSET, f->file_offset);
	pb_uint64(msg, MAPPING_FILENAME, string_id(b, f->path, strlen(f->path)));
	if (f->build_id_len == 0)
		return;
	for (size_t i = 0; i < f->build_id_len; i++)
		strbuf_appendf(&hex, "%02x", f->build_id[i]);
	char *text = strbuf_take(&hex);
	if (!text) {
		b->profile.failed = true;
		return;
	}
	pb_uint64(msg, MAPPING_BUILD_ID, string_id(b, text, strlen(text)));
	free(text);
}

/* The Mapping keyed by b->key, written when new: the fields of known, else just its name. */
static uint64_t mapping_of_key(struct pprof_builder *b, const struct pprof_file *known,
			       const char *name, size_t name_len)
{
	bool added;
	uint64_t id = object_id(b, &b->mappings, &added);

	if (!added)
		return id;
	struct pb_buf msg = {0};
	pb_uint64(&msg, MAPPING_ID, id);
	if (known)
		write_file_fields(b, &msg, known);
	else
		pb_uint64(&msg, MAPPING_FILENAME, string_id(b, name, name_len));
	pb_uint64(&msg, MAPPING_HAS_FUNCTIONS, 1);
	pb_message(&b->profile, PROFILE_MAPPING, &msg);
	pb_free(&msg);
	return id;
}

/* The Mapping of a known file, keyed by its path. */
static uint64_t file_mapping_id(struct pprof_builder *b, const struct pprof_file *f)
{
	pb_reset(&b->key);
	pb_string(&b->key, MAPPING_FILENAME, f->path);
	return mapping_of_key(b, f, NULL, 0);
}

/* The Mapping of the file a frame names (by base name), or of the kernel: the known file's
 * when one path has that name, else a Mapping of the name alone. */
static uint64_t named_mapping_id(struct pprof_builder *b, const char *name, size_t len)
{
	const struct pprof_file *known = file_named(b, name, len);

	if (known)
		return file_mapping_id(b, known);
	pb_reset(&b->key);
	pb_bytes(&b->key, MAPPING_ID, name, len); /* another field than a path's key */
	return mapping_of_key(b, NULL, name, len);
}

/* The origin noted for a frame text, or NULL. */
static const struct frame_origin *origin_of(const struct pprof_builder *b, const char *text,
					    size_t len)
{
	return b->origins ? frame_origins_find(b->origins, text, len) : NULL;
}

/* The Mapping of a symbolized native frame: its file's, when noted; 0 when not known. */
static uint64_t origin_mapping_id(struct pprof_builder *b, const struct frame_origin *origin)
{
	if (!origin || origin->file >= b->file_count || !b->files[origin->file].basename)
		return 0;
	return file_mapping_id(b, &b->files[origin->file]);
}

/* The Function of name, file and start_line (0: unknown). */
static uint64_t function_id(struct pprof_builder *b, const char *name, size_t name_len,
			    const char *file, size_t file_len, uint64_t start_line)
{
	bool added;

	pb_reset(&b->key);
	pb_bytes(&b->key, FUNCTION_NAME, name, name_len);
	pb_bytes(&b->key, FUNCTION_FILENAME, file, file_len);
	pb_uint64(&b->key, FUNCTION_START_LINE, start_line);
	uint64_t id = object_id(b, &b->functions, &added);
	if (!added)
		return id;
	uint64_t name_id = string_id(b, name, name_len);
	struct pb_buf msg = {0};
	pb_uint64(&msg, FUNCTION_ID, id);
	pb_uint64(&msg, FUNCTION_NAME, name_id);
	pb_uint64(&msg, FUNCTION_SYSTEM_NAME, name_id);
	if (file_len)
		pb_uint64(&msg, FUNCTION_FILENAME, string_id(b, file, file_len));
	if (start_line)
		pb_uint64(&msg, FUNCTION_START_LINE, start_line);
	pb_message(&b->profile, PROFILE_FUNCTION, &msg);
	pb_free(&msg);
	return id;
}

/* The Function of a JIT-compiled Lua frame: its name with the folded text's suffix, so that
 * it stays apart from the same function interpreted. */
static uint64_t jit_function_id(struct pprof_builder *b, const struct pprof_frame *f,
				uint64_t start_line)
{
	size_t suffix = strlen(JIT_NAME_SUFFIX);
	char *name = malloc(f->name_len + suffix);

	if (!name) {
		b->profile.failed = true;
		return 0;
	}
	memcpy(name, f->name, f->name_len);
	memcpy(name + f->name_len, JIT_NAME_SUFFIX, suffix);
	uint64_t id = function_id(b, name, f->name_len + suffix, f->file, f->file_len, start_line);
	free(name);
	return id;
}

/* The Function of frame f (origin: its noted origin, or NULL); *line: the Line's number (the
 * executing line, 0 when unknown). */
static uint64_t frame_function(struct pprof_builder *b, const struct pprof_frame *f,
			       const struct frame_origin *origin, uint64_t *line)
{
	bool lua = f->kind == PPROF_FRAME_LUA || f->kind == PPROF_FRAME_LUA_JIT;
	uint64_t start_line = !lua ? 0 : !b->lua_lines ? f->number : origin ? origin->start_line : 0;

	*line = lua && b->lua_lines ? f->number : 0;
	if (f->kind == PPROF_FRAME_LUA_JIT)
		return jit_function_id(b, f, start_line);
	if (f->kind == PPROF_FRAME_NATIVE_ADDRESS) /* its file is the Mapping's */
		return function_id(b, f->name, f->name_len, "", 0, 0);
	return function_id(b, f->name, f->name_len, f->file, f->file_len, start_line);
}

/* The Location message of frame text (id given): function, line, mapping and address. */
static void write_location(struct pprof_builder *b, uint64_t id, const char *text, size_t len)
{
	struct pprof_frame f;
	uint64_t line, mapping = 0, address = 0;

	pprof_frame_parse(text, len, &f);
	const struct frame_origin *origin = origin_of(b, text, len);
	uint64_t function = frame_function(b, &f, origin, &line);
	if (f.kind == PPROF_FRAME_NATIVE_ADDRESS) {
		mapping = named_mapping_id(b, f.file, f.file_len);
		address = f.number;
	} else if (f.kind == PPROF_FRAME_KERNEL) {
		mapping = named_mapping_id(b, KERNEL_MAPPING, strlen(KERNEL_MAPPING));
	} else if (f.kind == PPROF_FRAME_NATIVE) {
		mapping = origin_mapping_id(b, origin);
	}
	struct pb_buf msg = {0}, line_msg = {0};
	pb_uint64(&line_msg, LINE_FUNCTION_ID, function);
	if (line)
		pb_uint64(&line_msg, LINE_LINE, line);
	pb_uint64(&msg, LOCATION_ID, id);
	if (mapping)
		pb_uint64(&msg, LOCATION_MAPPING_ID, mapping);
	if (address)
		pb_uint64(&msg, LOCATION_ADDRESS, address);
	pb_message(&msg, LOCATION_LINE, &line_msg);
	pb_message(&b->profile, PROFILE_LOCATION, &msg);
	pb_free(&line_msg);
	pb_free(&msg);
}

static uint64_t location_id(struct pprof_builder *b, const char *text, size_t len)
{
	bool added;

	pb_reset(&b->key);
	pb_bytes(&b->key, LOCATION_ID, text, len);
	uint64_t id = object_id(b, &b->locations, &added);
	if (added)
		write_location(b, id, text, len);
	return id;
}

/* b->stack: the location ids of a folded line's frames, leaf first (as pprof wants). */
static int line_stack(struct pprof_builder *b, const char *text)
{
	b->depth = 0;
	for (const char *frame = text;;) {
		size_t len = strcspn(frame, ";");
		uint64_t id = location_id(b, frame, len);

		if (grow_array_append(b->stack, b->depth, b->stack_capacity, 64, &id) < 0)
			return -ENOMEM;
		if (frame[len] == '\0')
			break;
		frame += len + 1;
	}
	for (size_t i = 0; i < b->depth / 2; i++) {
		uint64_t leaf = b->stack[b->depth - 1 - i];

		b->stack[b->depth - 1 - i] = b->stack[i];
		b->stack[i] = leaf;
	}
	return b->profile.failed ? -ENOMEM : 0;
}

static void add_label(struct pprof_builder *b, struct pb_buf *sample, const char *key,
		      const char *str, int64_t num)
{
	struct pb_buf label = {0};

	pb_uint64(&label, LABEL_KEY, string_id(b, key, strlen(key)));
	if (str)
		pb_uint64(&label, LABEL_STR, string_id(b, str, strlen(str)));
	else
		pb_uint64(&label, LABEL_NUM, (uint64_t)num);
	pb_message(sample, SAMPLE_LABEL, &label);
	pb_free(&label);
}

/* One Sample of b->stack: count samples of a thread or process (NULL: unknown). */
static void write_sample(struct pprof_builder *b, uint64_t count, int64_t period,
			 const struct process_samples *process)
{
	struct pb_buf sample = {0};
	uint64_t values[2] = {count, count * (uint64_t)period};

	pb_packed_uint64(&sample, SAMPLE_LOCATION_ID, b->stack, b->depth);
	pb_packed_uint64(&sample, SAMPLE_VALUE, values, b->value_count);
	if (process) {
		add_label(b, &sample, "pid", NULL, process->tgid);
		if (process->tid)
			add_label(b, &sample, "thread", NULL, process->tid);
		if (process->comm[0])
			add_label(b, &sample, "comm", process->comm, 0);
	}
	pb_message(&b->profile, PROFILE_SAMPLE, &sample);
	pb_free(&sample);
}

static void write_value_type(struct pprof_builder *b, uint32_t field, const char *type,
			     const char *unit)
{
	struct pb_buf vt = {0};

	pb_uint64(&vt, VALUE_TYPE_TYPE, string_id(b, type, strlen(type)));
	pb_uint64(&vt, VALUE_TYPE_UNIT, string_id(b, unit, strlen(unit)));
	pb_message(&b->profile, field, &vt);
	pb_free(&vt);
}

/* The sample types (b->value_count of them) and the period. */
static void write_header(struct pprof_builder *b, const struct pprof_info *info)
{
	string_id(b, "", 0); /* string_table[0] must be "" */
	if (info->off_cpu) { /* one value: the count, microseconds off CPU */
		b->value_count = 1;
		write_value_type(b, PROFILE_SAMPLE_TYPE, "off_cpu", "microseconds");
		write_value_type(b, PROFILE_PERIOD_TYPE, "off_cpu", "microseconds");
		pb_uint64(&b->profile, PROFILE_PERIOD, 1);
	} else {
		b->value_count = 2;
		write_value_type(b, PROFILE_SAMPLE_TYPE, "samples", "count");
		write_value_type(b, PROFILE_SAMPLE_TYPE, "cpu", "nanoseconds");
		write_value_type(b, PROFILE_PERIOD_TYPE, "cpu", "nanoseconds");
		pb_uint64(&b->profile, PROFILE_PERIOD, (uint64_t)info->period_nanos);
	}
	pb_uint64(&b->profile, PROFILE_TIME_NANOS, (uint64_t)info->time_nanos);
	pb_uint64(&b->profile, PROFILE_DURATION_NANOS, (uint64_t)info->duration_nanos);
}

static void builder_free(struct pprof_builder *b)
{
	pb_free(&b->profile);
	pb_free(&b->key);
	string_ids_free(&b->strings);
	string_ids_free(&b->functions);
	string_ids_free(&b->locations);
	string_ids_free(&b->mappings);
	free(b->stack);
}

int pprof_encode(const struct folded_line *lines, size_t count, const struct pprof_info *info,
		 uint8_t **out, size_t *len)
{
	struct pprof_builder b = {
		.lua_lines = info->lua_lines,
		.files = info->files,
		.file_count = info->file_count,
		.origins = info->origins,
	};

	write_header(&b, info);
	for (size_t i = 0; i < count && !b.profile.failed; i++) {
		const struct folded_line *l = &lines[i];

		if (line_stack(&b, l->text) < 0)
			break;
		if (l->process_count == 0)
			write_sample(&b, l->count, info->period_nanos, NULL);
		for (size_t p = 0; p < l->process_count; p++)
			write_sample(&b, l->processes[p].samples, info->period_nanos,
				     &l->processes[p]);
	}
	if (b.profile.failed) {
		builder_free(&b);
		return -ENOMEM;
	}
	*out = b.profile.data;
	*len = b.profile.len;
	b.profile = (struct pb_buf){0};
	builder_free(&b);
	return 0;
}

int pprof_write(FILE *f, const struct folded_line *lines, size_t count,
		const struct pprof_info *info)
{
	uint8_t *data;
	size_t len;
	int rc = pprof_encode(lines, count, info, &data, &len);

	if (rc < 0)
		return rc;
	rc = gzip_write(f, data, len);
	free(data);
	return rc;
}
