/* SPDX-License-Identifier: MIT */
/* elf_image.c - identity, PT_LOAD list and section access for one ELF file through libelf.
 *
 * The file is opened with ELF_C_READ: libelf then reads the ELF header and the header tables with
 * pread and section contents on demand, bounds-checked against the file size; nothing is mapped,
 * so a memfd (the vdso) or a huge file behave like any other. Every value taken from the file is
 * treated as hostile. */
#include "unwind/elf_image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/content_hash.h"
#include "lib/log.h"

/* Upper bounds on what we accept from a header: real files have a few dozen of each. */
#define MAX_PHDRS 4096u
#define HASH_CHUNK (1u << 20) /* content hash reads the file 1 MiB at a time */

static pthread_once_t libelf_once = PTHREAD_ONCE_INIT;
static bool libelf_ok;

static void libelf_init(void) { libelf_ok = elf_version(EV_CURRENT) != EV_NONE; }

/* Hash the whole file through pread in fixed chunks (no mapping, bounded memory). */
static int hash_file_content(int fd, uint8_t out[16])
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -errno;
	if (st.st_size < 0)
		return -EINVAL;
	uint8_t *buf = malloc(HASH_CHUNK);
	if (!buf)
		return -ENOMEM;
	struct content_hash h;
	content_hash_init(&h);
	uint64_t size = (uint64_t)st.st_size;
	uint64_t done = 0;
	int err = 0;
	while (done < size) {
		size_t want = size - done < HASH_CHUNK ? (size_t)(size - done) : HASH_CHUNK;
		ssize_t got = pread(fd, buf, want, (off_t)done);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			err = -errno;
			break;
		}
		if (got == 0) { /* the file shrank under us */
			err = -EIO;
			break;
		}
		content_hash_update(&h, buf, (size_t)got);
		done += (uint64_t)got;
	}
	free(buf);
	if (err == 0)
		content_hash_final(&h, out);
	return err;
}

/* ---- build-id */

/* Look for NT_GNU_BUILD_ID ("GNU" owner) in one note blob; libelf's gelf_getnote bounds-checks
 * every header against the blob (ELF gABI "Note Section"). Returns 1 when found. */
static int find_build_id_in_notes(struct elf_image *img, Elf_Data *data)
{
	if (!data || !data->d_buf)
		return 0;
	size_t offset = 0;
	GElf_Nhdr nhdr;
	size_t name_off, desc_off;
	while (offset < data->d_size) {
		size_t next = gelf_getnote(data, offset, &nhdr, &name_off, &desc_off);
		if (next == 0 || next <= offset)
			break;
		const char *name = (const char *)data->d_buf + name_off;
		if (nhdr.n_type == NT_GNU_BUILD_ID && nhdr.n_namesz == sizeof("GNU") &&
		    memcmp(name, "GNU", sizeof("GNU")) == 0 && nhdr.n_descsz > 0 &&
		    nhdr.n_descsz <= ELF_ID_MAX) {
			memcpy(img->id, (const uint8_t *)data->d_buf + desc_off, nhdr.n_descsz);
			img->id_len = nhdr.n_descsz;
			img->id_is_build_id = 1;
			return 1;
		}
		offset = next;
	}
	return 0;
}

/* Notes aligned to 8 use the 8-byte note layout (gABI; libelf: ELF_T_NHDR8). */
static Elf_Type note_type_for_align(uint64_t align) { return align == 8 ? ELF_T_NHDR8 : ELF_T_NHDR; }

static int build_id_from_phdrs(struct elf_image *img)
{
	size_t phnum = 0;
	if (elf_getphdrnum(img->elf, &phnum) != 0)
		return 0;
	if (phnum > MAX_PHDRS)
		phnum = MAX_PHDRS;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr phdr;
		if (!gelf_getphdr(img->elf, (int)i, &phdr) || phdr.p_type != PT_NOTE)
			continue;
		if (phdr.p_filesz == 0 || phdr.p_offset > INT64_MAX || phdr.p_filesz > SIZE_MAX)
			continue;
		/* elf_getdata_rawchunk rejects ranges outside the file. */
		Elf_Data *data = elf_getdata_rawchunk(img->elf, (int64_t)phdr.p_offset,
						      (size_t)phdr.p_filesz, note_type_for_align(phdr.p_align));
		if (find_build_id_in_notes(img, data))
			return 1;
	}
	return 0;
}

static int build_id_from_sections(struct elf_image *img)
{
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(img->elf, scn)) != NULL) {
		GElf_Shdr shdr;
		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_NOTE)
			continue;
		if (find_build_id_in_notes(img, elf_getdata(scn, NULL)))
			return 1;
	}
	return 0;
}

static int load_identity(struct elf_image *img, const char *name)
{
	if (build_id_from_phdrs(img) || build_id_from_sections(img))
		return 0;
	int err = hash_file_content(img->fd, img->id);
	if (err) {
		lp_warn("%s: cannot hash file content: %s", name, strerror(-err));
		return err;
	}
	img->id_len = 16;
	img->id_is_build_id = 0;
	return 0;
}

/* ---- PT_LOAD list */

static bool segment_is_sane(const GElf_Phdr *phdr)
{
	/* Reject wrap-around; filesz > memsz is tolerated by loaders only for broken files. */
	return phdr->p_vaddr <= UINT64_MAX - phdr->p_memsz && phdr->p_offset <= UINT64_MAX - phdr->p_filesz &&
	       phdr->p_filesz <= phdr->p_memsz;
}

static int load_segments(struct elf_image *img, const char *name)
{
	size_t phnum = 0;
	if (elf_getphdrnum(img->elf, &phnum) != 0) {
		lp_warn("%s: cannot read program headers: %s", name, elf_errmsg(-1));
		return -EINVAL;
	}
	if (phnum > MAX_PHDRS) {
		lp_warn("%s: %zu program headers, more than %u", name, phnum, MAX_PHDRS);
		return -EINVAL;
	}
	if (phnum == 0)
		return 0;
	img->loads = calloc(phnum, sizeof(*img->loads));
	if (!img->loads)
		return -ENOMEM;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr phdr;
		if (!gelf_getphdr(img->elf, (int)i, &phdr)) {
			lp_warn("%s: cannot read program header %zu: %s", name, i, elf_errmsg(-1));
			return -EINVAL;
		}
		if (phdr.p_type != PT_LOAD)
			continue;
		if (!segment_is_sane(&phdr)) {
			lp_debug("%s: ignoring inconsistent PT_LOAD %zu", name, i);
			continue;
		}
		img->loads[img->load_count++] = (struct elf_segment){
			.vaddr = phdr.p_vaddr,
			.memsz = phdr.p_memsz,
			.offset = phdr.p_offset,
			.filesz = phdr.p_filesz,
			.flags = phdr.p_flags,
		};
	}
	return 0;
}

/* ---- open / close */

static int check_header(struct elf_image *img, const char *name)
{
	if (elf_kind(img->elf) != ELF_K_ELF) {
		lp_warn("%s: not an ELF file", name);
		return -ENOEXEC;
	}
	GElf_Ehdr ehdr;
	if (!gelf_getehdr(img->elf, &ehdr)) {
		lp_warn("%s: bad ELF header: %s", name, elf_errmsg(-1));
		return -ENOEXEC;
	}
	if (ehdr.e_type != ET_EXEC && ehdr.e_type != ET_DYN) {
		lp_warn("%s: ELF type %u is neither an executable nor a shared object", name,
			(unsigned)ehdr.e_type);
		return -ENOEXEC;
	}
	img->type = ehdr.e_type;
	return 0;
}

int elf_image_open(struct elf_image *img, const char *path)
{
	memset(img, 0, sizeof(*img));
	img->fd = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = -errno;
		lp_warn("%s: cannot open: %s", path, strerror(errno));
		return err;
	}
	return elf_image_open_fd(img, fd, path);
}

int elf_image_open_fd(struct elf_image *img, int fd, const char *name_for_messages)
{
	const char *name = name_for_messages ? name_for_messages : "(elf)";
	memset(img, 0, sizeof(*img));
	img->fd = fd;
	img->name = strdup(name);
	if (!img->name) {
		lp_warn("%s: out of memory", name);
		elf_image_close(img);
		return -ENOMEM;
	}
	int err = pthread_once(&libelf_once, libelf_init);
	if (err != 0 || !libelf_ok) {
		lp_warn("%s: libelf initialization failed", name);
		elf_image_close(img);
		return -ENOSYS;
	}
	img->elf = elf_begin(fd, ELF_C_READ, NULL);
	if (!img->elf) {
		lp_warn("%s: %s", name, elf_errmsg(-1));
		elf_image_close(img);
		return -ENOEXEC;
	}
	err = check_header(img, name);
	if (!err)
		err = load_segments(img, name);
	if (!err)
		err = load_identity(img, name);
	if (err)
		elf_image_close(img);
	return err;
}

void elf_image_close(struct elf_image *img)
{
	if (img->elf)
		elf_end(img->elf);
	if (img->fd >= 0)
		close(img->fd);
	free(img->loads);
	free(img->name);
	memset(img, 0, sizeof(*img));
	img->fd = -1;
}

/* ---- accessors */

Elf_Scn *elf_image_section(const struct elf_image *img, const char *name, GElf_Shdr *shdr)
{
	if (!img->elf || !name)
		return NULL;
	size_t shstrndx;
	if (elf_getshdrstrndx(img->elf, &shstrndx) != 0)
		return NULL;
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(img->elf, scn)) != NULL) {
		GElf_Shdr tmp;
		if (!gelf_getshdr(scn, &tmp))
			continue;
		/* elf_strptr checks the offset against the string section. */
		const char *scn_name = elf_strptr(img->elf, shstrndx, tmp.sh_name);
		if (scn_name && strcmp(scn_name, name) == 0) {
			if (shdr)
				*shdr = tmp;
			return scn;
		}
	}
	return NULL;
}

int elf_image_offset_to_vaddr(const struct elf_image *img, uint64_t offset, uint64_t *vaddr)
{
	for (size_t i = 0; i < img->load_count; i++) {
		const struct elf_segment *seg = &img->loads[i];
		if (offset >= seg->offset && offset - seg->offset < seg->filesz) {
			*vaddr = seg->vaddr + (offset - seg->offset);
			return 0;
		}
	}
	return -ENOENT;
}

void elf_image_id_hex(const struct elf_image *img, char *buf, size_t buflen)
{
	static const char digits[] = "0123456789abcdef";
	if (buflen == 0)
		return;
	size_t n = img->id_len <= ELF_ID_MAX ? img->id_len : ELF_ID_MAX;
	if (n > (buflen - 1) / 2)
		n = (buflen - 1) / 2; /* documented contract: buflen >= 2 * id_len + 1 */
	for (size_t i = 0; i < n; i++) {
		buf[2 * i] = digits[img->id[i] >> 4];
		buf[2 * i + 1] = digits[img->id[i] & 15];
	}
	buf[2 * n] = '\0';
}

const char *elf_image_debuglink(const struct elf_image *img)
{
	GElf_Shdr shdr;
	Elf_Scn *scn = elf_image_section(img, ".gnu_debuglink", &shdr);
	if (!scn || shdr.sh_type == SHT_NOBITS)
		return NULL;
	Elf_Data *data = elf_getdata(scn, NULL);
	if (!data || !data->d_buf || data->d_size == 0)
		return NULL;
	/* The name is NUL-terminated, followed by padding and a CRC32 (GDB manual, "Debugging
	 * Information in Separate Files"). */
	const char *name = data->d_buf;
	if (!memchr(name, '\0', data->d_size) || name[0] == '\0')
		return NULL;
	return name;
}

size_t elf_image_read_vaddr(const struct elf_image *img, uint64_t vaddr, void *buf, size_t len)
{
	for (size_t i = 0; i < img->load_count; i++) {
		const struct elf_segment *seg = &img->loads[i];
		if (!(seg->flags & PF_R) || vaddr < seg->vaddr || vaddr - seg->vaddr >= seg->filesz)
			continue;
		uint64_t in_seg = vaddr - seg->vaddr;
		uint64_t avail = seg->filesz - in_seg;
		size_t want = avail < len ? (size_t)avail : len;
		if (seg->offset > (uint64_t)INT64_MAX - in_seg)
			return 0;
		ssize_t got;
		do
			got = pread(img->fd, buf, want, (off_t)(seg->offset + in_seg));
		while (got < 0 && errno == EINTR);
		return got > 0 ? (size_t)got : 0;
	}
	return 0;
}
