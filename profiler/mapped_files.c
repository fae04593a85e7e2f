/* SPDX-License-Identifier: MIT */
#include "profiler/mapped_files.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/clocks.h"
#include "lib/grow_array.h"
#include "lib/log.h"
#include "lib/u64_array.h"
#include "proc/process_root.h"
#include "runtime/luajit/luajit_detect.h"

int mapped_files_init(struct mapped_files *mf, struct table_store *store, int lua_interps_fd)
{
	memset(mf, 0, sizeof(*mf));
	mf->store = store;
	mf->lua_interps_fd = lua_interps_fd;
	mf->files = calloc(MAX_FILES, sizeof(*mf->files));
	table_cache_open(&mf->cache, NULL, NULL, 0, false);
	return mf->files ? 0 : -ENOMEM;
}

/* The identity of the builder is that of lua-perf's own executable: its build-id (a hash of its
 * content without one), so a rebuilt lua-perf never reads a table another build compiled. */
void mapped_files_open_cache(struct mapped_files *mf, const char *dir, bool say)
{
	struct elf_image self;

	if (!dir)
		return;
	if (elf_image_open(&self, "/proc/self/exe") != 0)
		return; /* said */
	table_cache_close(&mf->cache);
	table_cache_open(&mf->cache, dir, self.id, self.id_len, say);
	elf_image_close(&self);
}

void mapped_files_free(struct mapped_files *mf)
{
	free(mf->refused);
	mf->refused = NULL;
	if (!mf->files)
		return; /* never initialized, or nothing but the empty cache was */
	table_cache_close(&mf->cache);
	for (uint32_t i = 0; i < mf->count; i++) {
		free(mf->files[i].name);
		free(mf->files[i].loads);
		if (mf->files[i].lua && mf->files[i].lua->jit) {
			luajit_runtime_free(mf->files[i].lua->jit);
			free(mf->files[i].lua->jit);
		}
		free(mf->files[i].lua);
		free(mf->files[i].function_starts);
		symbol_table_free(&mf->files[i].symbols);
	}
	free(mf->files);
	memset(mf, 0, sizeof(*mf));
}

const struct mapped_file *mapped_files_get(const struct mapped_files *mf, uint32_t file_id)
{
	return file_id < mf->count && mf->files[file_id].name ? &mf->files[file_id] : NULL;
}

static char *format_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format_path(const char *fmt, ...)
{
	va_list ap;
	char *path = NULL;

	va_start(ap, fmt);
	if (vasprintf(&path, fmt, ap) < 0)
		path = NULL;
	va_end(ap);
	return path;
}

/* The mapped file itself: /proc/PID/map_files/ names exactly the mapped inode (also when deleted
 * or inside another mount namespace); without CAP_SYS_ADMIN / CAP_CHECKPOINT_RESTORE
 * (fs/proc/base.c, proc_map_files_get_link) the fallback is `path` as the process sees it, opened
 * inside its root (proc/process_root.h) - not for a deleted file, whose path may name another. */
static int open_mapped_file(pid_t pid, const struct proc_exec_map *map, const char *path)
{
	char *link = format_path("/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)pid, map->start, map->end);
	int fd = link ? open(link, O_RDONLY | O_CLOEXEC) : -1;
	struct stat st;

	free(link);
	if (fd >= 0 || path[0] != '/' || map->deleted)
		return fd;
	fd = process_open_regular(pid, path, &st);
	if (fd < 0) {
		errno = -fd;
		return -1;
	}
	return fd;
}

/* The vdso has no file: copy it out of the process into a memfd and read it as an ELF. */
static int open_vdso_copy(pid_t pid, const struct proc_exec_map *map)
{
	size_t len = map->end - map->start;
	char *path = format_path("/proc/%d/mem", (int)pid);
	int mem = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	int fd = -1;
	void *buf = NULL;

	free(path);
	if (mem < 0 || len == 0 || len > (1u << 20))
		goto out;
	buf = malloc(len);
	if (!buf || pread(mem, buf, len, (off_t)map->start) != (ssize_t)len)
		goto out;
	fd = memfd_create("lua-perf-vdso", MFD_CLOEXEC);
	if (fd >= 0 && write(fd, buf, len) != (ssize_t)len) {
		close(fd);
		fd = -1;
	}
out:
	free(buf);
	if (mem >= 0)
		close(mem);
	return fd;
}

static int find_cached(const struct mapped_files *mf, dev_t dev, ino_t ino)
{
	for (uint32_t i = 0; i < mf->count; i++)
		if (mf->files[i].name && mf->files[i].dev == dev && mf->files[i].ino == ino && dev != 0)
			return (int)i;
	return -1;
}

static int remember_function_starts(struct mapped_file *f, const struct cfi_table *cfi)
{
	if (!cfi || cfi->function_count == 0)
		return 0;
	f->function_starts = malloc(cfi->function_count * sizeof(*f->function_starts));
	if (!f->function_starts)
		return -ENOMEM;
	memcpy(f->function_starts, cfi->function_starts, cfi->function_count * sizeof(*f->function_starts));
	f->function_count = cfi->function_count;
	return 0;
}

static int remember_file(struct mapped_files *mf, uint32_t id, const struct elf_image *img,
			 const struct cfi_table *cfi, const char *name, pid_t pid, dev_t dev, ino_t ino)
{
	struct mapped_file *f = &mf->files[id];
	char *root = format_path("/proc/%d/root", (int)pid);

	if (remember_function_starts(f, cfi) < 0) {
		free(root);
		return -ENOMEM;
	}
	f->name = strdup(name);
	f->loads = img->load_count ? calloc(img->load_count, sizeof(*f->loads)) : NULL;
	if (!root || !f->name || (img->load_count && !f->loads)) {
		free(root);
		return -ENOMEM;
	}
	const char *slash = strrchr(f->name, '/');
	f->basename = slash ? slash + 1 : f->name;
	if (img->load_count)
		memcpy(f->loads, img->loads, img->load_count * sizeof(*f->loads));
	f->load_count = img->load_count;
	if (img->id_is_build_id) {
		memcpy(f->build_id, img->id, img->id_len);
		f->build_id_len = img->id_len;
	}
	f->dev = dev;
	f->ino = ino;
	f->has_table = table_store_has_table(mf->store, id);
	if (symbol_table_load_elf(&f->symbols, img, name, root) < 0)
		lp_debug("%s: no symbols", name);
	free(root);
	if (id >= mf->count)
		mf->count = id + 1;
	return 0;
}


static void log_puc_runtime(const char *name, const struct lua_runtime *rt)
{
	if (rt->interp.l_in_frame)
		lp_debug("%s: Lua %s, luaV_execute [0x%llx, 0x%llx) %s, L at CFA%+d", name, rt->version,
			 (unsigned long long)rt->interp.exec_start, (unsigned long long)rt->interp.exec_end,
			 rt->exec_from_symtab ? "from .symtab" : "derived from the API",
			 rt->interp.l_cfa_off);
	else
		lp_debug("%s: Lua %s, luaV_execute [0x%llx, 0x%llx) %s, L in DWARF register %u", name,
			 rt->version, (unsigned long long)rt->interp.exec_start,
			 (unsigned long long)rt->interp.exec_end,
			 rt->exec_from_symtab ? "from .symtab" : "derived from the API", rt->interp.l_reg);
	if (rt->resume_problem)
		lp_warn("%s: %s: the frames of resumed coroutines that no luaV_execute runs yet "
			"(after a yield) will be missing", name, rt->resume_problem);
	else
		lp_debug("%s: lua_resume [0x%llx, 0x%llx), L %s %d", name,
			 (unsigned long long)rt->interp.resume_start,
			 (unsigned long long)rt->interp.resume_end,
			 rt->interp.resume_l_in_frame ? "at CFA" : "in DWARF register",
			 rt->interp.resume_l_in_frame ? rt->interp.resume_l_cfa_off
						      : rt->interp.resume_l_reg);
}

/* PUC Lua first, then LuaJIT (which PUC detection refuses as NONE). On OK, rt->jit is set for
 * LuaJIT (malloc()ed, to free with luajit_runtime_free + free). */
static enum lua_detect_result detect_runtime(const struct elf_image *img, const struct cfi_table *cfi,
					     struct lua_runtime *rt, const char **reason)
{
	enum lua_detect_result r = lua_runtime_detect(img, cfi, rt, reason);
	if (r != LUA_DETECT_NONE)
		return r;
	struct luajit_runtime *jit = calloc(1, sizeof(*jit));
	if (!jit)
		return LUA_DETECT_NONE;
	r = luajit_detect(img, cfi, jit, reason);
	if (r != LUA_DETECT_OK) {
		free(jit); /* nothing to free inside on NONE and UNSUPPORTED (runtime/luajit/luajit_detect.h) */
		return r;
	}
	memset(rt, 0, sizeof(*rt));
	rt->interp = jit->interp;
	rt->jit = jit;
	return r;
}

/* Find a Lua VM in a newly registered file and tell the BPF walkers about it. */
static void detect_lua(struct mapped_files *mf, uint32_t id, const struct elf_image *img,
		       const struct cfi_table *cfi, const char *name)
{
	struct mapped_file *f = &mf->files[id];
	struct lua_runtime rt;
	const char *reason = NULL;

	switch (detect_runtime(img, cfi, &rt, &reason)) {
	case LUA_DETECT_NONE:
		return;
	case LUA_DETECT_UNSUPPORTED:
		f->lua_problem = reason ? reason : "unsupported Lua runtime";
		lp_debug("%s: %s", name, f->lua_problem);
		return;
	case LUA_DETECT_OK:
		break;
	}
	f->lua = malloc(sizeof(*f->lua));
	if (!f->lua || bpf_map_update_elem(mf->lua_interps_fd, &id, &rt.interp, BPF_ANY) != 0) {
		lp_warn("%s: cannot publish its Lua VM: %s", name, strerror(errno));
		free(f->lua);
		f->lua = NULL;
		if (rt.jit) {
			luajit_runtime_free(rt.jit);
			free(rt.jit);
		}
		return;
	}
	*f->lua = rt;
	if (rt.jit)
		lp_debug("%s: %s, interpreter [0x%llx, 0x%llx)", name, rt.jit->description,
			 (unsigned long long)rt.interp.exec_start, (unsigned long long)rt.interp.exec_end);
	else
		log_puc_runtime(name, &rt);
}

/* img's compiled table: from the cache, else compiled (and kept there). False when it has none
 * (cfi_table_build warned once when the file is damaged). */
static bool compiled_table(struct mapped_files *mf, const struct elf_image *img,
			   struct cfi_table *cfi)
{
	uint8_t key[CONTENT_HASH_SIZE];
	bool keyed = table_cache_usable(&mf->cache) && table_cache_key(&mf->cache, img, key) == 0;

	if (keyed && table_cache_load(&mf->cache, key, cfi) == 0)
		return true;
	if (cfi_table_build(img, cfi) != 0)
		return false;
	if (keyed)
		table_cache_store(&mf->cache, key, cfi);
	return true;
}

/* First sight of a file: compile its unwind table, publish it, load its symbols, look for a VM. */
static int register_file(struct mapped_files *mf, const struct elf_image *img, const char *name,
			 pid_t pid, dev_t dev, ino_t ino, uint32_t *file_id)
{
	double started = now_seconds();
	struct cfi_table cfi = {0};
	bool have_cfi = compiled_table(mf, img, &cfi);
	int rc;

	rc = table_store_add(mf->store, img, have_cfi ? &cfi : NULL, name, file_id);
	if (rc == 0)
		rc = remember_file(mf, *file_id, img, have_cfi ? &cfi : NULL, name, pid, dev, ino);
	if (rc == 0)
		detect_lua(mf, *file_id, img, have_cfi ? &cfi : NULL, name);
	cfi_table_free(&cfi);
	mf->build_seconds += now_seconds() - started;
	return rc;
}

static bool was_refused(const struct mapped_files *mf, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < mf->refused_count; i++)
		if (mf->refused[i].dev == dev && mf->refused[i].ino == ino)
			return true;
	return false;
}

/* elf_image_open_fd refused the file (err) and said why: when it is no usable ELF file
 * (ENOEXEC), remember it so that other processes mapping it, and later reads of the maps, neither
 * open it nor warn again. */
static int refuse_file(struct mapped_files *mf, dev_t dev, ino_t ino, int err)
{
	struct file_identity id = {.dev = dev, .ino = ino};

	if (dev != 0 && err == -ENOEXEC && grow_array_append(mf->refused, mf->refused_count, mf->refused_capacity, 8,
					  &id) != 0)
		return -ENOMEM;
	return err;
}

/* The file id of the ELF file open on fd (taken: closed here), registering it on first sight,
 * or -EAGAIN for a file seen for the first time when known_only. by_inode false: no inode to
 * cache it by (the vdso's memfd copy); found by content only. */
static int file_of_fd(struct mapped_files *mf, int fd, const char *path, pid_t pid, bool by_inode,
		      bool known_only, uint32_t *file_id)
{
	struct stat st = {0};
	struct elf_image img;
	int rc, known;

	if (by_inode && fstat(fd, &st) == 0 && (known = find_cached(mf, st.st_dev, st.st_ino)) >= 0) {
		close(fd);
		*file_id = (uint32_t)known;
		return 0;
	}
	if (by_inode && was_refused(mf, st.st_dev, st.st_ino)) {
		close(fd);
		return -ENOEXEC;
	}
	if (by_inode && known_only) {
		close(fd);
		return -EAGAIN;
	}
	rc = elf_image_open_fd(&img, fd, path);
	if (rc < 0)
		return refuse_file(mf, by_inode ? st.st_dev : 0, by_inode ? st.st_ino : 0, rc);
	known = table_store_find(mf->store, &img);
	if (known >= 0)
		*file_id = (uint32_t)known;
	else if (known_only)
		rc = -EAGAIN;
	else
		rc = register_file(mf, &img, path, pid, by_inode ? st.st_dev : 0,
				   by_inode ? st.st_ino : 0, file_id);
	elf_image_close(&img);
	return rc;
}

/* The file id of a mapping's file, registering the file on first sight (see file_of_fd). */
static int file_for_mapping(struct mapped_files *mf, pid_t pid, const struct proc_exec_map *map,
			    const char *path, bool known_only, uint32_t *file_id)
{
	bool is_vdso = strcmp(path, "[vdso]") == 0;
	int fd = is_vdso ? open_vdso_copy(pid, map) : open_mapped_file(pid, map, path);

	if (fd < 0)
		return -errno;
	return file_of_fd(mf, fd, path, pid, !is_vdso, known_only, file_id);
}

int mapped_files_prepare(struct mapped_files *mf, pid_t pid, const char *path)
{
	uint32_t file_id;
	char magic[4];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (pread(fd, magic, sizeof(magic), 0) != (ssize_t)sizeof(magic) ||
	    memcmp(magic, "\177ELF", sizeof(magic)) != 0) {
		close(fd); /* a script, say (command_script_interpreter names its interpreter) */
		return -ENOEXEC;
	}
	return file_of_fd(mf, fd, path, pid, true, false, &file_id);
}

/* bias such that ELF vaddr = address - bias. ld.so maps each PT_LOAD from its page-aligned file
 * offset (p_vaddr and p_offset agree modulo the page size, ELF gABI), so the mapping that holds
 * file offset `map->offset` at `map->start` puts p_offset at start + (p_offset - offset). */
static int mapping_bias(const struct mapped_file *f, const struct proc_exec_map *map, uint64_t *bias)
{
	for (size_t i = 0; i < f->load_count; i++) {
		const struct elf_segment *seg = &f->loads[i];
		uint64_t page_offset = seg->offset & ~0xfffull;

		if (map->offset >= page_offset && map->offset < seg->offset + seg->filesz + 0x1000) {
			*bias = map->start + (seg->offset - map->offset) - seg->vaddr;
			return 0;
		}
	}
	return -ENOENT;
}

static bool is_anonymous(const char *path)
{
	return path[0] == '\0' || (path[0] == '[' && strcmp(path, "[vdso]") != 0);
}

/* path: the mapping's file as the process names it (map->path without its root prefix).
 * -EAGAIN: left out, its file is new and known_only (see mapped_files_build_process). */
static int describe_mapping(struct mapped_files *mf, pid_t pid, const struct proc_exec_map *map,
			    const char *path, bool known_only, struct exec_mapping *out)
{
	uint32_t file_id;
	int rc;

	out->start = map->start;
	out->end = map->end;
	out->kind = MAPPING_ANON;
	if (is_anonymous(path))
		return 0;
	rc = file_for_mapping(mf, pid, map, path, known_only, &file_id);
	if (rc == -EAGAIN)
		return rc;
	if (rc < 0) {
		lp_debug("pid %d: cannot read %s: %s", (int)pid, path, strerror(-rc));
		out->kind = MAPPING_NO_TABLE;
		out->file_id = UINT32_MAX;
		return 0;
	}
	const struct mapped_file *f = &mf->files[file_id];
	out->file_id = file_id;
	out->kind = f->has_table ? MAPPING_FILE : MAPPING_NO_TABLE;
	uint64_t bias;
	if (mapping_bias(f, map, &bias) < 0) {
		lp_debug("%s: mapping at offset 0x%" PRIx64 " matches no PT_LOAD", path, map->offset);
		out->kind = MAPPING_NO_TABLE;
		return 0;
	}
	out->bias = bias;
	return 0;
}

uint64_t mapped_file_function_start(const struct mapped_file *f, uint64_t addr)
{
	size_t lo = u64_upper_bound(f->function_starts, f->function_count, addr);

	return lo > 0 ? f->function_starts[lo - 1] : addr;
}

const struct mapped_file *mapped_files_lua_of(const struct mapped_files *mf,
					      const struct proc_mappings *pm)
{
	const struct mapped_file *problem = NULL;

	for (uint32_t i = 0; i < pm->count && i < MAX_PROC_MAPPINGS; i++) {
		const struct mapped_file *f = pm->maps[i].kind == MAPPING_ANON
						      ? NULL
						      : mapped_files_get(mf, pm->maps[i].file_id);

		if (f && f->lua)
			return f;
		if (f && f->lua_problem && !problem)
			problem = f;
	}
	return problem;
}

int mapped_files_build_process(struct mapped_files *mf, pid_t pid, const struct proc_exec_maps *maps,
			       bool known_only, struct proc_mappings *out, size_t *deferred)
{
	char *root_prefix;

	*deferred = 0;
	if (process_root_prefix(pid, &root_prefix) < 0)
		return -ENOMEM;
	out->count = 0;
	out->luajit_file = 0;
	for (size_t i = 0; i < maps->count; i++) {
		const struct proc_exec_map *map = &maps->maps[i];

		if (strcmp(map->path, "[vsyscall]") == 0)
			continue; /* fixed kernel-provided page above user space */
		if (out->count >= MAX_PROC_MAPPINGS) {
			mf->mappings_dropped += !known_only; /* counted once, by the full pass */
			continue;
		}
		if (describe_mapping(mf, pid, map, process_path_inside(root_prefix, map->path),
				     known_only, &out->maps[out->count]) == -EAGAIN) {
			(*deferred)++;
			continue;
		}
		const struct exec_mapping *m = &out->maps[out->count++];
		const struct mapped_file *f = m->kind == MAPPING_ANON ? NULL : mapped_files_get(mf, m->file_id);
		if (f && f->lua && f->lua->jit && out->luajit_file == 0)
			out->luajit_file = m->file_id + 1;
	}
	out->generation++;
	free(root_prefix);
	return 0;
}
