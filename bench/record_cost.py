#!/usr/bin/env python3
"""Recording's size and cost on the callback storm (docs/RECORD.md, "Size
and cost"): bench/apps/storm.py N --repeat under no tracer and each
variant, in rounds (the variants' order rotated each round), each
variant's window bracketed by bare ones as bench/run does. Variants
(--variants, comma-separated): attach (`attach -q`), record (`record -o
FILE`), every_poll (`record --every-poll`), attach_precise (`attach -q
--mode precise`), precise (`record --mode precise`), every_callback
(`record --mode precise --every-callback`). The target is pinned to CPU 0,
the tracer to CPU 1. Per window: the target's CPU per callback
(utime+stime, /proc/PID/stat, 10 ms ticks, over the storm); for record,
the file's bytes and the polls the report counts; with --every-poll, the
polls in the file and those lost; in precise mode, the callbacks the
table counts, and with --every-callback those in the file and those lost.
Ratios (variant / mean of its two bare windows), medians with min-max: no
pass/fail.
Usage: bench/record_cost.py [--python PY] [--n N] [--rounds R] [--build DIR]
                            [--variants V,V...]"""
import argparse, json, os, signal, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def start_tool(args):
    p = subprocess.Popen(["taskset", "-c", "1"] + args, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "attached to" in line:
            return p
    raise SystemExit(f"{args}: never attached")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default="/root/.pyenv/versions/3.12.1/bin/python3.12")
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--variants", default="attach,record,every_poll")
    a = ap.parse_args()
    variants = a.variants.split(",")
    ls = os.path.join(a.build, "loopscope")
    tick = os.sysconf("SC_CLK_TCK")
    app = subprocess.Popen(["taskset", "-c", "0", a.python, os.path.join(HERE, "apps", "storm.py"),
                            str(a.n), "--repeat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True, cwd=os.path.join(HERE, "apps"))
    pid = app.pid
    time.sleep(1.0)
    tmp = tempfile.mkdtemp()
    res = {v: [] for v in ["bare"] + variants}
    sizes = {v: [] for v in variants if not v.startswith("attach")}

    def storm():
        t0 = cpu_ticks(pid)
        app.stdin.write("go\n")
        app.stdin.flush()
        while True:
            line = app.stdout.readline()
            if not line:
                raise SystemExit("storm ended")
            if "ns_per_cb" in line:
                break
        return (cpu_ticks(pid) - t0) / tick / a.n * 1e9  # ns per callback

    for r in range(a.rounds):
        k = r % len(variants)
        for v in variants[k:] + variants[:k]:
            b1 = storm()
            path = os.path.join(tmp, f"r{r}-{v}.rec")
            args = [ls, "attach", "-q", "-p", str(pid)] if v.startswith("attach") else \
                   [ls, "record", "-p", str(pid), "-o", path]
            if v == "every_poll":
                args.append("--every-poll")
            if v in ("attach_precise", "precise", "every_callback"):
                args += ["--mode", "precise"]
            if v == "every_callback":
                args.append("--every-callback")
            tool = start_tool(args)
            time.sleep(0.5)
            cost = storm()
            tool.send_signal(signal.SIGINT)
            tool.wait()
            b2 = storm()
            res["bare"] += [b1, b2]
            res[v].append(cost / ((b1 + b2) / 2))
            if not v.startswith("attach"):
                rep = subprocess.run([ls, "report", path, "--json"], capture_output=True, text=True)
                rj = [json.loads(l) for l in rep.stdout.splitlines() if '"report"' in l][-1]
                polls = sum(t["polls"] for t in rj["threads"])
                ep = rj.get("every_poll", {})
                sizes[v].append({"bytes": os.path.getsize(path), "polls": polls,
                                 "seconds": rj["duration_ns"] / 1e9,
                                 "bytes_per_poll": os.path.getsize(path) / max(polls, 1),
                                 "polls_recorded": ep.get("polls_recorded"),
                                 "polls_lost": ep.get("polls_lost")})
                if v in ("precise", "every_callback"):
                    cbs = sum(c["duration"]["count"] for c in rj.get("callbacks", []))
                    ec = rj.get("every_callback", {})
                    sizes[v][-1].update({"callbacks": cbs,
                                         "bytes_per_callback": os.path.getsize(path) / max(cbs, 1),
                                         "callbacks_recorded": ec.get("callbacks_recorded"),
                                         "callbacks_lost": ec.get("callbacks_lost")})
    app.stdin.close()
    app.wait()
    med = lambda v: sorted(v)[len(v) // 2]
    out = {"python": a.python, "n": a.n, "rounds": a.rounds,
           "bare_ns_per_cb_median": med(res["bare"])}
    for v in variants:
        out[f"{v}_vs_bare"] = [round(x, 3) for x in res[v]]
        out[f"{v}_vs_bare_median_min_max"] = [round(med(res[v]), 3), round(min(res[v]), 3),
                                              round(max(res[v]), 3)]
    for v in sizes:
        out[f"{v}_files"] = sizes[v]
    out["loadavg"] = open("/proc/loadavg").read().split()[:3]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
