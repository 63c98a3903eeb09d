// SPDX-License-Identifier: MIT
/* The await chain of the asyncio Task a loop thread runs (include/loopscope/
 * pytask.h): `.AsyncioDebug` found and validated once per process, then the
 * chain read from /proc/PID/mem while the loop is blocked (the objects do
 * not move while their loop thread is stuck in one callback). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "loopscope/abi/py_offsets.h"
#include "loopscope/procfs.h"
#include "loopscope/pyname.h"
#include "loopscope/pytarget.h"
#include "loopscope/pytask.h"

/* `_Py_AsyncioModuleDebugOffsets` (Modules/_asynciomodule.c, 3.14.0 to
 * 3.15): asyncio_task_object {size, task_name, task_awaited_by,
 * task_is_task, task_awaited_by_is_set, task_coro, task_node},
 * asyncio_interpreter_state {size, asyncio_tasks_head},
 * asyncio_thread_state {size, asyncio_running_loop, asyncio_running_task,
 * asyncio_tasks_head}: 13 uint64_t. */
#define AD_FIELDS 13
enum { AD_TASK_SIZE, AD_TASK_NAME, AD_TASK_AWAITED_BY, AD_TASK_IS_TASK,
       AD_TASK_AWAITED_BY_IS_SET, AD_TASK_CORO, AD_TASK_NODE, AD_INTERP_SIZE,
       AD_INTERP_TASKS_HEAD, AD_TSTATE_SIZE, AD_TSTATE_RUNNING_LOOP,
       AD_TSTATE_RUNNING_TASK, AD_TSTATE_TASKS_HEAD };

/* PyLongObject, 3.12+ (Include/cpython/longintrepr.h): lv_tag at 16
 * (number of digits << 3 | sign: 0 positive, 1 zero, 2 negative), 30-bit
 * digits (uint32_t) from 24. PySetObject (Include/cpython/setobject.h,
 * 3.8-3.15): mask at 32, table at 40; setentry {key, hash}, 16 bytes. */
#define LONG_TAG 16
#define LONG_DIGITS 24
#define SET_MASK 32
#define SET_TABLE 40
#define SETENTRY_SIZE 16
#define SET_SCAN_MAX 256 /* entries of one awaited_by set looked at */
#define MAX_THREADS 4096
#define MAX_INTERPS 64

int ls_pytask_parse(const void *raw, size_t len, struct ls_pytask_offsets *out, char *why,
		    size_t why_len)
{
	uint64_t v[AD_FIELDS];
	static const struct { int idx; unsigned width; const char *name; } task_fields[] = {
		{ AD_TASK_NAME, 8, "task_name" },
		{ AD_TASK_AWAITED_BY, 8, "task_awaited_by" },
		{ AD_TASK_IS_TASK, 1, "task_is_task" },
		{ AD_TASK_AWAITED_BY_IS_SET, 1, "task_awaited_by_is_set" },
		{ AD_TASK_CORO, 8, "task_coro" },
	};

	if (len < sizeof(v)) {
		snprintf(why, why_len, ".AsyncioDebug is %zu bytes, %zu expected", len, sizeof(v));
		return -EINVAL;
	}
	memcpy(v, raw, sizeof(v));
	if (v[AD_TASK_SIZE] < 64 || v[AD_TASK_SIZE] > 4096) {
		snprintf(why, why_len, ".AsyncioDebug: TaskObj size %llu out of bounds (64..4096)",
			 (unsigned long long)v[AD_TASK_SIZE]);
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(task_fields) / sizeof(task_fields[0]); i++) {
		uint64_t o = v[task_fields[i].idx];

		/* Every field lies after the object header (16 bytes). */
		if (o < 16 || o > v[AD_TASK_SIZE] - task_fields[i].width) {
			snprintf(why, why_len, ".AsyncioDebug: %s offset %llu outside TaskObj (%llu bytes)",
				 task_fields[i].name, (unsigned long long)o,
				 (unsigned long long)v[AD_TASK_SIZE]);
			return -EINVAL;
		}
	}
	if (v[AD_TSTATE_SIZE] < 64 || v[AD_TSTATE_SIZE] > 65536 ||
	    v[AD_TSTATE_RUNNING_TASK] > v[AD_TSTATE_SIZE] - 8) {
		snprintf(why, why_len, ".AsyncioDebug: thread state size %llu or running task "
			 "offset %llu out of bounds", (unsigned long long)v[AD_TSTATE_SIZE],
			 (unsigned long long)v[AD_TSTATE_RUNNING_TASK]);
		return -EINVAL;
	}
	out->task_size = v[AD_TASK_SIZE];
	out->task_name = v[AD_TASK_NAME];
	out->task_awaited_by = v[AD_TASK_AWAITED_BY];
	out->task_is_task = v[AD_TASK_IS_TASK];
	out->task_awaited_by_is_set = v[AD_TASK_AWAITED_BY_IS_SET];
	out->task_coro = v[AD_TASK_CORO];
	out->tstate_size = v[AD_TSTATE_SIZE];
	out->tstate_running_task = v[AD_TSTATE_RUNNING_TASK];
	return 0;
}

/* The section in the ELF file at path: 0, -ENOENT (none), or the parse's
 * error; other -errno from opening. */
static int section_in(const char *path, struct ls_pytask_offsets *out, char *why, size_t why_len)
{
	struct ls_elf *e;
	struct ls_elf_section s;
	unsigned char raw[AD_FIELDS * 8];
	int err;

	err = ls_elf_open(path, &e);
	if (err)
		return err;
	if (ls_elf_section(e, ".AsyncioDebug", &s)) {
		ls_elf_close(e);
		return -ENOENT;
	}
	if (s.size < sizeof(raw)) {
		snprintf(why, why_len, "%s: .AsyncioDebug is %llu bytes, %zu expected", path,
			 (unsigned long long)s.size, sizeof(raw));
		ls_elf_close(e);
		return -EINVAL;
	}
	err = ls_elf_read(e, s.addr, raw, sizeof(raw));
	ls_elf_close(e);
	if (err) {
		snprintf(why, why_len, "%s: .AsyncioDebug unreadable", path);
		return -EINVAL;
	}
	return ls_pytask_parse(raw, sizeof(raw), out, why, why_len);
}

/* The first mapping of a file named _asyncio.* in /proc/PID/maps, as a
 * /proc/PID/map_files/START-END path (opens the very file mapped, in any
 * mount namespace or chroot, even deleted). 0 or -ENOENT. */
static int asyncio_module_path(pid_t pid, char *path, size_t len)
{
	char maps[64], line[4096 + 128];
	FILE *f;
	int ret = -ENOENT;

	snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)pid);
	f = fopen(maps, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end;
		char *file = strchr(line, '/'), *base;

		if (!file || sscanf(line, "%llx-%llx", &start, &end) != 2)
			continue;
		file[strcspn(file, "\n")] = '\0';
		base = strrchr(file, '/') + 1;
		if (strncmp(base, "_asyncio.", 9))
			continue;
		snprintf(path, len, "/proc/%d/map_files/%llx-%llx", (int)pid, start, end);
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

int ls_pytask_find(const struct ls_py_target *t, struct ls_pytask_offsets *out, char *why,
		   size_t why_len)
{
	char path[128];
	int err;

	why[0] = '\0';
	if (t->major != 3 || t->minor < 14) {
		snprintf(why, why_len, "await chains need CPython 3.14+ (this is %d.%d)", t->major,
			 t->minor);
		return -ENOTSUP;
	}
	err = section_in(t->host_path, out, why, why_len);
	if (err && err != -ENOENT && !why[0]) /* could not open it (#12, fuzz_elf) */
		snprintf(why, why_len, "cannot read %.200s: %s", t->path[0] ? t->path : t->host_path,
			 err == -ENOEXEC ? "not an x86-64 ELF64 file" : strerror(-err));
	if (err != -ENOENT)
		return err;
	err = asyncio_module_path(t->pid, path, sizeof(path));
	if (err) {
		snprintf(why, why_len, "pid %d: the _asyncio module is not loaded", (int)t->pid);
		return err;
	}
	err = section_in(path, out, why, why_len);
	if (err == -ENOENT)
		snprintf(why, why_len, "pid %d: _asyncio has no .AsyncioDebug section", (int)t->pid);
	else if (err && !why[0])
		snprintf(why, why_len, "pid %d: cannot open the _asyncio module: %s", (int)t->pid,
			 strerror(-err));
	return err;
}

static int rd(int fd, uint64_t addr, void *buf, size_t len)
{
	if (!addr)
		return -EFAULT;
	return ls_proc_mem_read(fd, addr, buf, len) ? -EFAULT : 0;
}

static int rd64(int fd, uint64_t addr, uint64_t *v)
{
	return rd(fd, addr, v, sizeof(*v));
}

/* tp_name of obj's type into buf; 0 or -EFAULT. */
static int type_name(int fd, const struct ls_py_offsets *off, uint64_t obj, char *buf, size_t len)
{
	uint64_t type, name;
	ssize_t n;

	if (rd64(fd, obj + off->ob_type, &type) || rd64(fd, type + off->tp_name, &name) || !name)
		return -EFAULT;
	n = ls_proc_mem_read_some(fd, name, buf, len - 1);
	if (n <= 0)
		return -EFAULT;
	buf[n] = '\0';
	buf[strnlen(buf, (size_t)n)] = '\0';
	return 0;
}

/* A Task's name: a str, or an int N the Task formats as "Task-N" when asked
 * (Modules/_asynciomodule.c, 3.13+, names made lazily). */
static void task_name(int fd, const struct ls_py_offsets *off, uint64_t obj, char *out, size_t len)
{
	char tn[32];
	uint64_t tag;
	uint32_t digits[3];

	snprintf(out, len, "?");
	if (!obj || type_name(fd, off, obj, tn, sizeof(tn)))
		return;
	if (!strcmp(tn, "str")) {
		if (ls_pyname_read_str(fd, off, obj, out, len))
			snprintf(out, len, "?");
		return;
	}
	if (strcmp(tn, "int") || rd64(fd, obj + LONG_TAG, &tag))
		return;
	if ((tag & 3) == 1) { /* zero */
		snprintf(out, len, "Task-0");
		return;
	}
	if ((tag & 3) != 0 || (tag >> 3) == 0 || (tag >> 3) > 2 ||
	    rd(fd, obj + LONG_DIGITS, digits, (size_t)(tag >> 3) * 4))
		return;
	snprintf(out, len, "Task-%llu",
		 (unsigned long long)digits[0] |
			 ((tag >> 3) == 2 ? (unsigned long long)digits[1] << 30 : 0));
}

static void coro_name(int fd, const struct ls_py_offsets *off, uint64_t coro, char *out, size_t len)
{
	char tn[64];
	uint64_t q;

	snprintf(out, len, "?");
	if (!coro || type_name(fd, off, coro, tn, sizeof(tn)))
		return;
	if (strcmp(tn, "coroutine") && strcmp(tn, "generator") && strcmp(tn, "async_generator")) {
		snprintf(out, len, "<%s>", tn);
		return;
	}
	if (!off->cr_qualname || rd64(fd, coro + off->cr_qualname, &q) ||
	    ls_pyname_read_str(fd, off, q, out, len))
		snprintf(out, len, "?");
}

/* Is obj a Task (its Future head says so)? */
static bool is_task(int fd, const struct ls_pytask_offsets *ao, uint64_t obj)
{
	unsigned char b;

	return obj && !rd(fd, obj + ao->task_is_task, &b, 1) && b == 1;
}

/* The tasks awaiting task (awaited_by: one object, or a set): the first
 * into *first (0 when none), their number returned. */
static uint32_t awaiters(int fd, const struct ls_pytask_offsets *ao, uint64_t task, uint64_t *first)
{
	uint64_t by, mask, table;
	unsigned char is_set;
	uint32_t n = 0;

	*first = 0;
	if (rd64(fd, task + ao->task_awaited_by, &by) || !by ||
	    rd(fd, task + ao->task_awaited_by_is_set, &is_set, 1))
		return 0;
	if (!is_set) {
		if (!is_task(fd, ao, by))
			return 0;
		*first = by;
		return 1;
	}
	if (rd64(fd, by + SET_MASK, &mask) || rd64(fd, by + SET_TABLE, &table) || mask > (1u << 20))
		return 0;
	for (uint64_t i = 0; i <= mask && i < SET_SCAN_MAX; i++) {
		uint64_t key;

		/* Empty slots hold NULL, deleted ones the set's dummy key (a
		 * static object whose is_task byte is not 1). */
		if (rd64(fd, table + i * SETENTRY_SIZE, &key) || !key || !is_task(fd, ao, key))
			continue;
		if (!*first)
			*first = key;
		n++;
	}
	return n;
}

/* Thread tid's PyThreadState in the interpreters under runtime_addr. */
static int find_tstate(int fd, const struct ls_py_offsets *off, uint64_t runtime_addr, pid_t tid,
		       uint64_t *out)
{
	uint64_t interp;
	int seen = 0;

	if (!off->tstate_native_thread_id)
		return -ENOTSUP;
	if (rd64(fd, runtime_addr + off->runtime_interpreters_head, &interp))
		return -EFAULT;
	for (int i = 0; interp && i < MAX_INTERPS; i++) {
		uint64_t ts, next;

		if (rd64(fd, interp + off->interp_threads_head, &ts))
			return -EFAULT;
		while (ts && seen++ < MAX_THREADS) {
			uint64_t ntid;

			if (rd64(fd, ts + off->tstate_native_thread_id, &ntid))
				return -EFAULT;
			if (ntid == (uint64_t)tid) {
				*out = ts;
				return 0;
			}
			if (rd64(fd, ts + off->tstate_next, &ts))
				return -EFAULT;
		}
		if (rd64(fd, interp + off->interp_next, &next))
			return -EFAULT;
		interp = next;
	}
	return -ESRCH;
}

int ls_pytask_chain_from(int memfd, const struct ls_py_offsets *off,
			 const struct ls_pytask_offsets *ao, uint64_t task,
			 struct ls_pytask_chain *out)
{
	out->n = 0;
	out->truncated = 0;
	while (task && is_task(memfd, ao, task)) {
		struct ls_pytask *t;
		uint64_t name = 0, coro = 0, next;
		bool cycle = false;

		for (uint32_t i = 0; i < out->n; i++)
			cycle |= out->task[i].addr == task;
		if (cycle)
			break;
		if (out->n == LS_PYTASK_CHAIN_MAX) {
			out->truncated = 1;
			break;
		}
		t = &out->task[out->n++];
		memset(t, 0, sizeof(*t));
		t->addr = task;
		rd64(memfd, task + ao->task_name, &name);
		rd64(memfd, task + ao->task_coro, &coro);
		task_name(memfd, off, name, t->name, sizeof(t->name));
		coro_name(memfd, off, coro, t->coro, sizeof(t->coro));
		t->awaiters = awaiters(memfd, ao, task, &next);
		task = next;
	}
	return 0;
}

int ls_pytask_chain(int memfd, const struct ls_py_offsets *off, const struct ls_pytask_offsets *ao,
		    uint64_t runtime_addr, pid_t tid, struct ls_pytask_chain *out)
{
	uint64_t ts, task;
	int err;

	out->n = 0;
	out->truncated = 0;
	err = find_tstate(memfd, off, runtime_addr, tid, &ts);
	if (err)
		return err;
	if (rd64(memfd, ts + ao->tstate_running_task, &task))
		return -EFAULT;
	return ls_pytask_chain_from(memfd, off, ao, task, out);
}

/* s into buf at pos, control bytes and quotes escaped; the new pos. */
static size_t put_escaped(char *buf, size_t pos, size_t len, const char *s)
{
	for (; *s && pos + 5 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
			pos += (size_t)snprintf(buf + pos, len - pos, "\\x%02x", c);
		else
			buf[pos++] = (char)c;
	}
	buf[pos] = '\0';
	return pos;
}

char *ls_pytask_chain_text(const struct ls_pytask_chain *c, char *buf, size_t len)
{
	size_t pos = 0;

	if (!len)
		return buf;
	buf[0] = '\0';
	for (uint32_t i = 0; i < c->n && pos + 16 < len; i++) {
		const struct ls_pytask *t = &c->task[i];

		pos += (size_t)snprintf(buf + pos, len - pos, "%stask \"",
					i == 0 ? "" : i == 1 ? " <- awaited by " : " <- ");
		if (pos >= len)
			break;
		pos = put_escaped(buf, pos, len, t->name);
		pos += (size_t)snprintf(buf + pos, len - pos, "\" (");
		if (pos >= len)
			break;
		pos = put_escaped(buf, pos, len, t->coro);
		pos += (size_t)snprintf(buf + pos, len - pos, ")%s",
					t->awaiters > 1 ? " (+ other awaiters)" : "");
		if (pos >= len)
			break;
	}
	if (c->truncated && pos + 8 < len)
		snprintf(buf + pos, len - pos, " <- ...");
	buf[len - 1] = '\0';
	return buf;
}

struct json_object *ls_pytask_chain_json(const struct ls_pytask_chain *c)
{
	json_object *arr;

	if (!c || !c->n)
		return NULL;
	arr = json_object_new_array();
	for (uint32_t i = 0; i < c->n; i++) {
		json_object *o = json_object_new_object();
		char id[32];

		snprintf(id, sizeof(id), "0x%llx", (unsigned long long)c->task[i].addr);
		json_object_object_add(o, "task", json_object_new_string(c->task[i].name));
		json_object_object_add(o, "coroutine", json_object_new_string(c->task[i].coro));
		json_object_object_add(o, "task_id", json_object_new_string(id));
		json_object_object_add(o, "awaiters", json_object_new_int((int)c->task[i].awaiters));
		json_object_array_add(arr, o);
	}
	return arr;
}
