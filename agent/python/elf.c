// SPDX-License-Identifier: MIT
/* A small ELF64 reader over libelf: symbols, sections, bytes and relocated
 * pointers at link-time addresses, file offsets for uprobes. The layouts are
 * those of the ELF spec (gABI) and the x86-64 psABI; see pytarget.h. */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "loopscope/pytarget.h"

#define PAGE 4096ULL

struct ls_elf {
	int fd;
	Elf *elf;
	GElf_Ehdr ehdr;
	size_t shstrndx;
	uint64_t file_size;   /* st_size at open */
	Elf_Scn *symtab, *dynsym, *rela_dyn;
};

/* Whether a section can be walked whole: within the file (a section that
 * claims more than the file holds is forged or truncated) and at most
 * LS_ELF_SECTION_MAX bytes; SHT_NOBITS has no bytes to read. */
static bool section_ok(const struct ls_elf *e, const GElf_Shdr *sh)
{
	return sh->sh_type != SHT_NOBITS && sh->sh_size <= LS_ELF_SECTION_MAX &&
	       sh->sh_offset <= e->file_size && sh->sh_size <= e->file_size - sh->sh_offset;
}

/* A symbol table or .rela.dyn that can be walked, with the section its
 * sh_link names (the strings; for .rela.dyn, the symbols) also fine. */
static bool table_ok(struct ls_elf *e, const GElf_Shdr *sh)
{
	Elf_Scn *link;
	GElf_Shdr lsh;

	if (!section_ok(e, sh) || !sh->sh_entsize)
		return false;
	link = elf_getscn(e->elf, sh->sh_link);
	return link && gelf_getshdr(link, &lsh) && section_ok(e, &lsh);
}

int ls_elf_open(const char *path, struct ls_elf **out)
{
	struct ls_elf *e;
	Elf_Scn *scn = NULL;
	struct stat st;
	int err = -ENOEXEC;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -ENOTSUP;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	/* Never blocks: a target may leave a FIFO where its file was. */
	e->fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (e->fd < 0) {
		err = -errno;
		goto cleanup;
	}
	if (fstat(e->fd, &st) || !S_ISREG(st.st_mode)) {
		err = -EINVAL;
		goto cleanup;
	}
	e->file_size = (uint64_t)st.st_size;
	e->elf = elf_begin(e->fd, ELF_C_READ_MMAP, NULL);
	if (!e->elf || elf_kind(e->elf) != ELF_K_ELF || gelf_getclass(e->elf) != ELFCLASS64 ||
	    !gelf_getehdr(e->elf, &e->ehdr) || e->ehdr.e_machine != EM_X86_64 ||
	    elf_getshdrstrndx(e->elf, &e->shstrndx))
		goto cleanup;
	while ((scn = elf_nextscn(e->elf, scn))) {
		GElf_Shdr sh;
		const char *name;

		if (!gelf_getshdr(scn, &sh))
			continue;
		name = elf_strptr(e->elf, e->shstrndx, sh.sh_name);
		if ((sh.sh_type == SHT_SYMTAB || sh.sh_type == SHT_DYNSYM || sh.sh_type == SHT_RELA) &&
		    !table_ok(e, &sh))
			continue; /* too large, or not in the file: as if absent */
		if (sh.sh_type == SHT_SYMTAB && !e->symtab)
			e->symtab = scn;
		else if (sh.sh_type == SHT_DYNSYM && !e->dynsym)
			e->dynsym = scn;
		else if (sh.sh_type == SHT_RELA && name && !strcmp(name, ".rela.dyn"))
			e->rela_dyn = scn;
	}
	*out = e;
	return 0;
cleanup:
	ls_elf_close(e);
	return err;
}

void ls_elf_close(struct ls_elf *e)
{
	if (!e)
		return;
	if (e->elf)
		elf_end(e->elf);
	if (e->fd >= 0)
		close(e->fd);
	free(e);
}

int ls_elf_type(const struct ls_elf *e)
{
	return e->ehdr.e_type;
}

bool ls_elf_has_symtab(const struct ls_elf *e)
{
	return e->symtab != NULL;
}

static int find_in(struct ls_elf *e, Elf_Scn *scn, const char *name, uint64_t *vaddr,
		   uint64_t *size)
{
	Elf_Data *d;
	GElf_Shdr sh;
	size_t i, n;

	if (!scn || !gelf_getshdr(scn, &sh) || !sh.sh_entsize || !(d = elf_getdata(scn, NULL)))
		return -ENOENT;
	n = sh.sh_size / sh.sh_entsize;
	for (i = 1; i < n; i++) {
		GElf_Sym s;
		const char *sn;

		if (!gelf_getsym(d, (int)i, &s) || s.st_shndx == SHN_UNDEF)
			continue;
		sn = elf_strptr(e->elf, sh.sh_link, s.st_name);
		if (sn && !strcmp(sn, name)) {
			if (vaddr)
				*vaddr = s.st_value;
			if (size)
				*size = s.st_size;
			return 0;
		}
	}
	return -ENOENT;
}

int ls_elf_symbol(struct ls_elf *e, const char *name, enum ls_elf_table table,
		  uint64_t *vaddr, uint64_t *size)
{
	if (table != LS_ELF_DYNSYM && !find_in(e, e->symtab, name, vaddr, size))
		return 0;
	if (table != LS_ELF_SYMTAB && !find_in(e, e->dynsym, name, vaddr, size))
		return 0;
	return -ENOENT;
}

int ls_elf_section(struct ls_elf *e, const char *name, struct ls_elf_section *out)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(e->elf, scn))) {
		GElf_Shdr sh;
		const char *sn;

		if (!gelf_getshdr(scn, &sh))
			continue;
		sn = elf_strptr(e->elf, e->shstrndx, sh.sh_name);
		if (sn && !strcmp(sn, name)) {
			out->addr = sh.sh_addr;
			out->offset = sh.sh_offset;
			out->size = sh.sh_size;
			out->type = sh.sh_type;
			out->flags = sh.sh_flags;
			return 0;
		}
	}
	return -ENOENT;
}

/* The PT_LOAD whose file-backed bytes hold [vaddr, vaddr + len). */
static int segment(struct ls_elf *e, uint64_t vaddr, uint64_t len, GElf_Phdr *ph)
{
	size_t i, n;

	if (elf_getphdrnum(e->elf, &n))
		return -EFAULT;
	for (i = 0; i < n; i++) {
		if (!gelf_getphdr(e->elf, (int)i, ph) || ph->p_type != PT_LOAD)
			continue;
		if (vaddr >= ph->p_vaddr && vaddr - ph->p_vaddr < ph->p_filesz &&
		    len <= ph->p_filesz - (vaddr - ph->p_vaddr) &&
		    /* and in the file: a segment may claim more than it holds */
		    ph->p_offset <= e->file_size &&
		    vaddr - ph->p_vaddr + len <= e->file_size - ph->p_offset)
			return 0;
	}
	return -EFAULT;
}

int ls_elf_vaddr_to_offset(struct ls_elf *e, uint64_t vaddr, uint64_t *offset)
{
	GElf_Phdr ph;
	int err = segment(e, vaddr, 1, &ph);

	if (!err)
		*offset = vaddr - ph.p_vaddr + ph.p_offset;
	return err;
}

int ls_elf_read(struct ls_elf *e, uint64_t vaddr, void *buf, size_t len)
{
	GElf_Phdr ph;
	int err = len > LS_ELF_READ_MAX ? -E2BIG : segment(e, vaddr, len, &ph);
	ssize_t n;

	if (err)
		return err;
	n = pread(e->fd, buf, len, (off_t)(vaddr - ph.p_vaddr + ph.p_offset));
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int ls_elf_reloc(struct ls_elf *e, uint64_t vaddr, uint64_t *value)
{
	Elf_Data *d;
	GElf_Shdr sh;
	size_t i, n;

	if (!e->rela_dyn || !gelf_getshdr(e->rela_dyn, &sh) || !sh.sh_entsize ||
	    !(d = elf_getdata(e->rela_dyn, NULL)))
		return -ENOENT;
	n = sh.sh_size / sh.sh_entsize;
	for (i = 0; i < n; i++) {
		GElf_Rela r;
		GElf_Sym s;
		Elf_Data *sd;
		Elf_Scn *symscn;

		if (!gelf_getrela(d, (int)i, &r) || r.r_offset != vaddr)
			continue;
		switch (GELF_R_TYPE(r.r_info)) {
		case R_X86_64_RELATIVE: /* B + A */
			*value = (uint64_t)r.r_addend;
			return 0;
		case R_X86_64_64:       /* S + A */
		case R_X86_64_GLOB_DAT: /* S (the addend is 0 in practice) */
			symscn = elf_getscn(e->elf, sh.sh_link);
			sd = symscn ? elf_getdata(symscn, NULL) : NULL;
			if (!sd || !gelf_getsym(sd, (int)GELF_R_SYM(r.r_info), &s))
				return -ENOENT;
			if (s.st_shndx == SHN_UNDEF)
				return -ENXIO;
			*value = s.st_value + (uint64_t)r.r_addend;
			return 0;
		default:
			return -ENOTSUP;
		}
	}
	return -ENOENT;
}

int ls_elf_read_ptr(struct ls_elf *e, uint64_t vaddr, uint64_t *value)
{
	int err = ls_elf_reloc(e, vaddr, value);

	if (err != -ENOENT)
		return err;
	return ls_elf_read(e, vaddr, value, sizeof(*value));
}

int ls_elf_first_load(struct ls_elf *e, uint64_t *vaddr, uint64_t *offset)
{
	GElf_Phdr ph;
	size_t i, n;

	if (elf_getphdrnum(e->elf, &n))
		return -ENOENT;
	/* gABI: PT_LOAD entries are sorted by p_vaddr, so the first is lowest. */
	for (i = 0; i < n; i++) {
		if (!gelf_getphdr(e->elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		*vaddr = ph.p_vaddr & ~(PAGE - 1);
		*offset = ph.p_offset & ~(PAGE - 1);
		return 0;
	}
	return -ENOENT;
}
