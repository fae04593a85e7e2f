/* SPDX-License-Identifier: MIT */
/* test_pprof.c - the pprof output's parts (output/protobuf_writer.c, output/string_ids.c,
 * output/pprof_frame.c, output/frame_origins.c, output/pprof_profile.c, output/gzip_file.c).
 *
 *   test_pprof               the protobuf encodings against byte sequences of the protobuf
 *                            encoding guide and by hand; frame names taken apart; string ids;
 *                            frame origins (agreement, bound); the sample types, period and
 *                            values of a CPU and of an off-CPU profile (decoded here)
 *   test_pprof write FILE    a gzipped profile of fixed folded lines (every kind of frame, two
 *                            processes and their threads, frame origins, hostile names) to
 *                            FILE, for tests/e2e/pprof_test.py to decode with an independent
 *                            reader
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/grow_array.h"
#include "output/frame_origins.h"
#include "output/pprof_frame.h"
#include "output/pprof_profile.h"
#include "output/protobuf_writer.h"
#include "output/string_ids.h"
#include "tests/unit/support/test_check.h"

static bool bytes_are(const struct pb_buf *b, const uint8_t *want, size_t len)
{
	return !b->failed && b->len == len && memcmp(b->data, want, len) == 0;
}

#define CHECK_BYTES(buf, ...)                                                                      \
	do {                                                                                       \
		static const uint8_t want_[] = {__VA_ARGS__};                                      \
		CHECK(bytes_are(buf, want_, sizeof(want_)), "bytes of %s", #buf);                  \
	} while (0)

static void varints(void)
{
	struct pb_buf b = {0};

	pb_varint(&b, 0);
	CHECK_BYTES(&b, 0x00);
	pb_reset(&b);
	pb_varint(&b, 127);
	CHECK_BYTES(&b, 0x7f);
	pb_reset(&b);
	pb_varint(&b, 128);
	CHECK_BYTES(&b, 0x80, 0x01);
	pb_reset(&b);
	pb_varint(&b, 300);
	CHECK_BYTES(&b, 0xac, 0x02);
	pb_reset(&b);
	pb_varint(&b, UINT64_MAX);
	CHECK_BYTES(&b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01);
	pb_free(&b);
}

/* The examples of the protobuf encoding guide (protobuf.dev/programming-guides/encoding). */
static void fields(void)
{
	struct pb_buf b = {0}, inner = {0};
	uint64_t packed[] = {3, 270, 86942};

	pb_uint64(&b, 1, 150);
	CHECK_BYTES(&b, 0x08, 0x96, 0x01);
	pb_reset(&b);
	pb_string(&b, 2, "testing");
	CHECK_BYTES(&b, 0x12, 0x07, 't', 'e', 's', 't', 'i', 'n', 'g');
	pb_reset(&b);
	pb_uint64(&inner, 1, 150);
	pb_message(&b, 3, &inner);
	CHECK_BYTES(&b, 0x1a, 0x03, 0x08, 0x96, 0x01);
	pb_reset(&b);
	pb_packed_uint64(&b, 4, packed, 3);
	CHECK_BYTES(&b, 0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05);
	pb_reset(&b);
	pb_packed_uint64(&b, 4, packed, 0); /* nothing: an empty packed field is left out */
	pb_string(&b, 6, "");               /* the empty string is written: string_table[0] */
	pb_uint64(&b, 100, 1);              /* a field number past 15: a two-byte tag */
	CHECK_BYTES(&b, 0x32, 0x00, 0xa0, 0x06, 0x01);
	pb_free(&b);
	pb_free(&inner);
}

static void check_frame(const char *text, enum pprof_frame_kind kind, const char *name,
			const char *file, uint64_t number)
{
	struct pprof_frame f;

	pprof_frame_parse(text, strlen(text), &f);
	CHECK(f.kind == kind && f.name_len == strlen(name) &&
		      memcmp(f.name, name, f.name_len) == 0 && f.file_len == strlen(file) &&
		      memcmp(f.file, file, f.file_len) == 0 && f.number == number,
	      "%s: kind %d, name %.*s, file %.*s, number %llu", text, (int)f.kind, (int)f.name_len,
	      f.name, (int)f.file_len, f.file, (unsigned long long)f.number);
}

static void frames(void)
{
	check_frame("malloc", PPROF_FRAME_NATIVE, "malloc", "", 0);
	check_frame("lua5.4+0xe6bf", PPROF_FRAME_NATIVE_ADDRESS, "lua5.4+0xe6bf", "lua5.4", 0xe6bf);
	check_frame("operator+", PPROF_FRAME_NATIVE, "operator+", "", 0);
	check_frame("a+0xZZ", PPROF_FRAME_NATIVE, "a+0xZZ", "", 0);
	check_frame("+0x10", PPROF_FRAME_NATIVE, "+0x10", "", 0);
	check_frame("x+0x11111111111111111", PPROF_FRAME_NATIVE, "x+0x11111111111111111", "", 0);
	check_frame("do_syscall_64_[k]", PPROF_FRAME_KERNEL, "do_syscall_64", "", 0);
	check_frame("L:handle@app.lua:12", PPROF_FRAME_LUA, "handle", "app.lua", 12);
	check_frame("L:main@/srv/a.lua:0", PPROF_FRAME_LUA, "main", "/srv/a.lua", 0);
	check_frame("L:Obj:m@[string \"a:b@c\"]:7", PPROF_FRAME_LUA, "Obj:m", "[string \"a:b@c\"]",
		    7);
	check_frame("L:handler@/srv/h.lua:12_[j]", PPROF_FRAME_LUA_JIT, "handler", "/srv/h.lua", 12);
	check_frame("L:pcall@builtin", PPROF_FRAME_LUA_BUILTIN, "pcall", "builtin", 0);
	check_frame("L:builtin#3@builtin", PPROF_FRAME_LUA_BUILTIN, "builtin#3", "builtin", 0);
	check_frame("L:?@?:0", PPROF_FRAME_LUA, "?", "?", 0);
	check_frame("L:x@a.lua", PPROF_FRAME_NATIVE, "L:x@a.lua", "", 0);   /* no line */
	check_frame("L:x@a.lua:", PPROF_FRAME_NATIVE, "L:x@a.lua:", "", 0); /* empty line */
	check_frame("L:", PPROF_FRAME_NATIVE, "L:", "", 0);
	check_frame("[unknown]", PPROF_FRAME_NATIVE, "[unknown]", "", 0);
}

static void string_ids(void)
{
	struct string_ids t = {0};
	uint64_t id = 99;
	bool added = false;
	char key[32];

	CHECK(string_ids_get(&t, "", 0, &id, &added) == 0 && id == 0 && added, "empty first");
	CHECK(string_ids_get(&t, "a\0b", 3, &id, &added) == 0 && id == 1 && added, "bytes");
	CHECK(string_ids_get(&t, "a", 1, &id, &added) == 0 && id == 2 && added, "a prefix");
	for (int i = 0; i < 1000; i++) { /* grows the table */
		snprintf(key, sizeof(key), "k%d", i);
		CHECK(string_ids_get(&t, key, strlen(key), &id, &added) == 0 && added &&
			      id == 3 + (uint64_t)i, "k%d", i);
	}
	CHECK(string_ids_get(&t, "a\0b", 3, &id, &added) == 0 && id == 1 && !added, "found");
	CHECK(string_ids_get(&t, "k999", 4, &id, &added) == 0 && id == 1002 && !added, "found");
	string_ids_free(&t);
}

static bool origin_is(const struct frame_origins *o, const char *text, uint32_t file,
		      uint32_t start_line)
{
	const struct frame_origin *got = frame_origins_find(o, text, strlen(text));

	return got && got->file == file && got->start_line == start_line;
}

/* Origins noted by text; two origins of one text keep what they agree on; the bound. */
static void origins(void)
{
	struct frame_origins o = {.max_bytes = 40};
	char name[16];

	frame_origins_note(&o, "malloc", 6, (struct frame_origin){1, 0});
	frame_origins_note(&o, "L:f@a.lua:7", 11, (struct frame_origin){FRAME_ORIGIN_NO_FILE, 5});
	CHECK(origin_is(&o, "malloc", 1, 0) && origin_is(&o, "L:f@a.lua:7", FRAME_ORIGIN_NO_FILE, 5),
	      "noted");
	CHECK(!frame_origins_find(&o, "mallo", 5) && !frame_origins_find(&o, "", 0), "not noted");
	frame_origins_note(&o, "malloc", 6, (struct frame_origin){1, 0});
	CHECK(origin_is(&o, "malloc", 1, 0), "the same origin again");
	frame_origins_note(&o, "malloc", 6, (struct frame_origin){2, 0});
	CHECK(origin_is(&o, "malloc", FRAME_ORIGIN_NO_FILE, 0), "two files: none");
	frame_origins_note(&o, "L:f@a.lua:7", 11, (struct frame_origin){FRAME_ORIGIN_NO_FILE, 6});
	CHECK(origin_is(&o, "L:f@a.lua:7", FRAME_ORIGIN_NO_FILE, 0), "two lines defined: none");
	for (int i = 0; i < 10; i++) { /* 17 bytes so far, 4 more each: 5 fit in the bound */
		snprintf(name, sizeof(name), "fn%02d", i);
		frame_origins_note(&o, name, strlen(name), (struct frame_origin){0, 0});
	}
	CHECK(origin_is(&o, "fn04", 0, 0) && !frame_origins_find(&o, "fn05", 4) && o.dropped == 5,
	      "bound: %llu dropped, want 5", (unsigned long long)o.dropped);
	frame_origins_free(&o);
	CHECK(o.max_bytes == 40 && !frame_origins_find(&o, "malloc", 6), "freed");
}

/* ---- Reading an encoded Profile back, as much as its sample types and values need. */

struct pb_reader {
	const uint8_t *at, *end;
	bool bad; /* malformed */
};

struct pb_field {
	uint64_t number;
	uint64_t value;        /* of a varint */
	struct pb_reader data; /* of a length-delimited field */
};

static uint64_t read_varint(struct pb_reader *r)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64 && r->at < r->end; shift += 7) {
		uint8_t byte = *r->at++;

		v |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80))
			return v;
	}
	r->bad = true;
	return 0;
}

/* The next field: false at the end, or when it is malformed (r->bad). */
static bool next_field(struct pb_reader *r, struct pb_field *f)
{
	if (r->bad || r->at >= r->end)
		return false;
	uint64_t tag = read_varint(r);

	*f = (struct pb_field){.number = tag >> 3};
	if ((tag & 7) == 0) {
		f->value = read_varint(r);
	} else if ((tag & 7) == 2) {
		uint64_t len = read_varint(r);

		r->bad |= len > (uint64_t)(r->end - r->at);
		if (!r->bad) {
			f->data = (struct pb_reader){r->at, r->at + len, false};
			r->at += len;
		}
	} else {
		r->bad = true;
	}
	return !r->bad;
}

#define MAX_SAMPLE_TYPES 4

struct pb_string {
	const uint8_t *data;
	size_t len;
};

/* What the checks below look at. Value types are (type, unit) string ids. */
struct decoded_profile {
	uint8_t *encoded;          /* the Profile (strings point into it) */
	struct pb_string *strings;
	size_t string_count, string_capacity;
	uint64_t sample_types[MAX_SAMPLE_TYPES][2];
	size_t sample_type_count;
	uint64_t period_type[2];
	uint64_t period;
	size_t samples;
	uint64_t value_sums[MAX_SAMPLE_TYPES];
	size_t odd_samples; /* samples whose value count is not sample_type_count */
	bool bad;
};

static void read_value_type(struct pb_reader r, uint64_t type[2])
{
	struct pb_field f;

	while (next_field(&r, &f))
		if (f.number == 1 || f.number == 2) /* ValueType.type, .unit */
			type[f.number - 1] = f.value;
}

static void read_sample(struct decoded_profile *d, struct pb_reader r)
{
	struct pb_field f;
	size_t values = 0;

	while (next_field(&r, &f)) {
		if (f.number != 2) /* Sample.value, packed */
			continue;
		while (f.data.at < f.data.end && !f.data.bad) {
			uint64_t v = read_varint(&f.data);

			if (values < MAX_SAMPLE_TYPES)
				d->value_sums[values] += v;
			values++;
		}
		d->bad |= f.data.bad;
	}
	d->samples++;
	d->odd_samples += values != d->sample_type_count;
}

static void decode_profile(const uint8_t *data, size_t len, struct decoded_profile *d)
{
	struct pb_reader r = {data, data + len, false};
	struct pb_field f;

	while (next_field(&r, &f)) {
		if (f.number == 1 && d->sample_type_count < MAX_SAMPLE_TYPES)
			read_value_type(f.data, d->sample_types[d->sample_type_count++]);
		else if (f.number == 1)
			d->bad = true;
		else if (f.number == 2)
			read_sample(d, f.data);
		else if (f.number == 6)
			d->bad |= grow_array_append(d->strings, d->string_count, d->string_capacity, 64,
						    &((struct pb_string){f.data.at,
									 (size_t)(f.data.end - f.data.at)})) < 0;
		else if (f.number == 11)
			read_value_type(f.data, d->period_type);
		else if (f.number == 12)
			d->period = f.value;
	}
	d->bad |= r.bad;
}

static void decoded_free(struct decoded_profile *d)
{
	free(d->strings);
	free(d->encoded);
}

/* Is the value type (type, unit) named so? */
static bool type_is(const struct decoded_profile *d, const uint64_t type[2], const char *name,
		    const char *unit)
{
	const char *want[2] = {name, unit};

	for (int i = 0; i < 2; i++) {
		if (type[i] >= d->string_count)
			return false;
		const struct pb_string *s = &d->strings[type[i]];
		if (s->len != strlen(want[i]) || memcmp(s->data, want[i], s->len) != 0)
			return false;
	}
	return true;
}

/* The lines of both checks: 1570 counted, in 3 Samples (one line's two threads, one line with
 * no thread known). */
static bool encode_lines(bool off_cpu, struct decoded_profile *d)
{
	struct process_samples threads[] = {{.tgid = 100, .tid = 101, .samples = 1000},
					    {.tgid = 100, .tid = 102, .samples = 500}};
	char blocked[] = "main;read;[blocked: read]", preempted[] = "main;[preempted]";
	struct folded_line lines[] = {
		{.text = blocked, .count = 1500, .processes = threads, .process_count = 2},
		{.text = preempted, .count = 70},
	};
	struct pprof_info info = {.duration_nanos = 30000000000, .period_nanos = 1001001,
				  .off_cpu = off_cpu};
	size_t len = 0;

	int rc = pprof_encode(lines, 2, &info, &d->encoded, &len);
	CHECK(rc == 0, "pprof_encode: %d", rc);
	if (rc == 0)
		decode_profile(d->encoded, len, d);
	CHECK(!d->bad, "malformed profile");
	return rc == 0 && !d->bad && d->samples == 3 && d->odd_samples == 0;
}

/* An off-CPU profile counts microseconds: one sample type, off_cpu/microseconds, whose values
 * are the counts; a CPU profile has samples/count and cpu/nanoseconds (count x period). */
static void sample_types(void)
{
	struct decoded_profile off = {0}, cpu = {0};

	CHECK(encode_lines(true, &off), "off-CPU: %zu samples, %zu with other than %zu values",
	      off.samples, off.odd_samples, off.sample_type_count);
	CHECK(off.sample_type_count == 1 &&
		      type_is(&off, off.sample_types[0], "off_cpu", "microseconds"),
	      "off-CPU: %zu sample types, want off_cpu/microseconds", off.sample_type_count);
	CHECK(type_is(&off, off.period_type, "off_cpu", "microseconds") && off.period == 1,
	      "off-CPU: period %llu, want 1 of off_cpu/microseconds", (unsigned long long)off.period);
	CHECK(off.value_sums[0] == 1570, "off-CPU: %llu microseconds, want 1570",
	      (unsigned long long)off.value_sums[0]);
	CHECK(encode_lines(false, &cpu), "CPU: %zu samples, %zu with other than %zu values",
	      cpu.samples, cpu.odd_samples, cpu.sample_type_count);
	CHECK(cpu.sample_type_count == 2 &&
		      type_is(&cpu, cpu.sample_types[0], "samples", "count") &&
		      type_is(&cpu, cpu.sample_types[1], "cpu", "nanoseconds"),
	      "CPU: %zu sample types, want samples/count, cpu/nanoseconds", cpu.sample_type_count);
	CHECK(type_is(&cpu, cpu.period_type, "cpu", "nanoseconds") && cpu.period == 1001001,
	      "CPU: period %llu, want 1001001 cpu/nanoseconds", (unsigned long long)cpu.period);
	CHECK(cpu.value_sums[0] == 1570 && cpu.value_sums[1] == 1570ull * 1001001,
	      "CPU: %llu samples, %llu ns", (unsigned long long)cpu.value_sums[0],
	      (unsigned long long)cpu.value_sums[1]);
	decoded_free(&off);
	decoded_free(&cpu);
}

/* The profile tests/e2e/pprof_test.py decodes: what each line is, it says. */
static int write_profile(const char *path)
{
	struct process_samples two[] = {{.tgid = 100, .samples = 3, .comm = "nginx"},
					{.tgid = 200, .tid = 201, .samples = 1, .comm = "nginx: worker"},
					{.tgid = 200, .tid = 202, .samples = 3, .comm = "nginx: worker"}};
	struct process_samples one[] = {{.tgid = 200, .tid = 200, .samples = 5,
					 .comm = "nginx: worker"}};
	struct process_samples unnamed[] = {{.tgid = 300, .samples = 1, .comm = ""}};
	char lines_text[][160] = {
		"_start;main;lua5.4+0xe6bf;L:main@app.lua:0;L:handle@app.lua:12;malloc",
		"_start;main;L:handle@app.lua:14;L:pcall@builtin;L:f@[string \"x:y\"]:3_[j]",
		"_start;main;L:handle@app.lua:12;write;do_syscall_64_[k];ksys_write_[k]",
		"[no stack]",
		"_start;libc.so.6+0x20;\xff\xfe<bad>",
	};
	static const uint8_t build_id[] = {0xde, 0xad, 0xbe, 0xef};
	/* lua5.4: one path, so its Mapping names it; libc.so.6: two paths, so only the base name
	 * for a frame that names it, the path for a frame whose origin is noted; index 3: no file */
	struct pprof_file files[] = {
		{.basename = "lua5.4", .path = "/usr/bin/lua5.4", .build_id = build_id,
		 .build_id_len = sizeof(build_id), .start = 0x1000, .limit = 0x9000,
		 .file_offset = 0x800},
		{.basename = "libc.so.6", .path = "/a/libc.so.6"},
		{.basename = "libc.so.6", .path = "/b/libc.so.6"},
		{0},
	};
	/* what the namer notes: the file of symbolized frames, the line defined of Lua functions
	 * (the two lines of handle are one Function); "write" in no file; "_start" in two */
	struct frame_origins origins = {0};
	const struct {
		const char *text;
		struct frame_origin origin;
	} noted[] = {
		{"malloc", {1, 0}},
		{"main", {0, 0}},
		{"write", {3, 0}},
		{"_start", {0, 0}},
		{"_start", {1, 0}},
		{"L:handle@app.lua:12", {FRAME_ORIGIN_NO_FILE, 10}},
		{"L:handle@app.lua:14", {FRAME_ORIGIN_NO_FILE, 10}},
		{"L:f@[string \"x:y\"]:3_[j]", {FRAME_ORIGIN_NO_FILE, 2}},
	};
	for (size_t i = 0; i < sizeof(noted) / sizeof(noted[0]); i++)
		frame_origins_note(&origins, noted[i].text, strlen(noted[i].text), noted[i].origin);
	struct folded_line lines[] = {
		{.text = lines_text[0], .count = 7, .processes = two, .process_count = 3},
		{.text = lines_text[1], .count = 5, .processes = one, .process_count = 1},
		{.text = lines_text[2], .count = 2},
		{.text = lines_text[3], .count = 1, .processes = unnamed, .process_count = 1},
		{.text = lines_text[4], .count = 4},
	};
	struct pprof_info info = {
		.time_nanos = 1700000000123456789,
		.duration_nanos = 3000000000,
		.period_nanos = 1001001,
		.lua_lines = true,
		.files = files,
		.file_count = sizeof(files) / sizeof(files[0]),
		.origins = &origins,
	};
	FILE *f = fopen(path, "wb");

	if (!f) {
		perror(path);
		return 1;
	}
	int rc = pprof_write(f, lines, sizeof(lines) / sizeof(lines[0]), &info);
	frame_origins_free(&origins);
	if (fclose(f) != 0 && rc == 0)
		rc = -1;
	if (rc < 0) {
		fprintf(stderr, "cannot write %s: %d\n", path, rc);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "write") == 0)
		return write_profile(argv[2]);
	if (argc != 1) {
		fprintf(stderr, "usage: test_pprof [write FILE]\n");
		return 2;
	}
	varints();
	fields();
	frames();
	string_ids();
	origins();
	sample_types();
	return check_finish("pprof");
}
