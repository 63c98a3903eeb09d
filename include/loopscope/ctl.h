/* SPDX-License-Identifier: MIT */
/*
 * loopscoped's control socket (agent/engine/ctl.c, the commands, and
 * agent/engine/ctl_server.c): a Unix stream socket, mode
 * 0600 and owned by root, speaking JSON lines: the client writes one JSON
 * object per line, the daemon answers each with one JSON object on one
 * line. The protocol is documented in docs/DAEMON.md:
 *   {"cmd":"list"}                        -> {"ok":true,"targets":[...]}
 *   {"cmd":"stats"}                       -> {"ok":true,"threads":[...],...}
 *   {"cmd":"slow","after":SEQ}            -> {"ok":true,"events":[...],"last":SEQ}
 *   {"cmd":"attach","pid":N,"service":S,"mode":"light"|"precise"} -> {"ok":true}
 *   {"cmd":"detach","pid":N}              -> {"ok":true}
 *   {"cmd":"dump","pid":N}                -> {"ok":true,"file":PATH} (flight recorder)
 * Errors: {"ok":false,"error":"one line"}.
 */
#ifndef LOOPSCOPE_CTL_H
#define LOOPSCOPE_CTL_H

#include <stddef.h>
#include <json-c/json.h>

#include "loopscope/monitor.h"

/* Largest request or response line, bytes. */
#define LS_CTL_MAX_LINE (4 * 1024 * 1024)

/* Answer one request (a parsed JSON object) against m: a new JSON object
 * the caller puts. Used by the socket server and by `loopscope top`
 * when it runs the engine in-process. attach/detach/dump change m, so call it
 * from the thread that runs ls_mon_poll when req may be one of them
 * (the server queues those for ls_ctl_server_run_pending). */
json_object *ls_ctl_handle(struct ls_mon *m, json_object *req);

/* The error answer {"ok":false,"error":msg} (msg: one line), a new JSON
 * object the caller puts. */
json_object *ls_ctl_error(const char *msg);

struct ls_ctl_server;

/* Listen on path (mode 0600; its directory is created 0755 when missing)
 * and serve requests in a thread, the only one that writes to clients;
 * attach/detach are queued for ls_ctl_server_run_pending, and a client
 * that sent one is not read further until its answer went out (answers
 * keep the order of the requests). m may be NULL (see ls_ctl_server_set_mon).
 * A path that exists: a socket a live daemon
 * answers on is -EADDRINUSE; a stale socket is replaced; anything else is
 * -EEXIST. Other -errno from socket/bind. err gets one line. */
int ls_ctl_server_start(struct ls_mon *m, const char *path, struct ls_ctl_server **out,
			char *err, size_t len);

/* The engine to answer from (m may be NULL at start: requests are then
 * answered "starting"; the socket is claimed before the engine loads). */
void ls_ctl_server_set_mon(struct ls_ctl_server *s, struct ls_mon *m);

/* Run queued attach/detach requests (call from the ls_mon_poll thread);
 * their answers go back to the server thread, which sends them to the
 * clients that asked, if they are still connected. */
void ls_ctl_server_run_pending(struct ls_ctl_server *s);

/* Stop serving, unlink the socket, free. NULL is fine. */
void ls_ctl_server_stop(struct ls_ctl_server *s);

/* ---- client ---------------------------------------------------------------- */

/* Connect to the daemon's socket: an fd, or -ENOENT (no socket), -ECONNREFUSED
 * (stale socket, no daemon), -EACCES (not root), other -errno. */
int ls_ctl_connect(const char *path);

/* Send req (not consumed) and read the answer into *resp (put it). 0;
 * -EIO on a closed or broken connection or an unparsable answer;
 * -ETIMEDOUT after timeout_ms. */
int ls_ctl_call(int fd, json_object *req, json_object **resp, int timeout_ms);

#endif /* LOOPSCOPE_CTL_H */
