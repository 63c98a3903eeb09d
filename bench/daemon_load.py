#!/usr/bin/python3
"""loopscoped's own cost while it monitors N Python processes at their full
callback rate (each a call_soon storm: a callback that queues itself again,
so every callback is one loop iteration).

    bench/daemon_load.py [-n 20] [--seconds 10] [--mode light|precise|both]

For each mode: starts N storm apps and loopscoped (a cmdline rule matching
them, Prometheus on a free loopback port scraped once a second by this
script, as a Prometheus would), waits 3 s, then measures over --seconds the
daemon's CPU (utime + stime from /proc/PID/stat, in % of one CPU), its RSS
(VmRSS, at the end) and the apps' callback rate (from the daemon's own
loopscope_iterations_total). Prints a Markdown table. Needs root and
build/loopscoped (LOOPSCOPE_BUILD names another build directory). Every
process started here is killed on exit.
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("LOOPSCOPE_BUILD", os.path.join(ROOT, "build"))
STORM = """
import asyncio, sys
async def main():
    loop = asyncio.get_running_loop()
    def cb():
        loop.call_soon(cb)
    loop.call_soon(cb)
    await asyncio.sleep(1e9)
asyncio.run(main())  # %s
"""
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def iterations(text):
    return sum(float(m.group(1)) for m in
               re.finditer(r'^loopscope_iterations_total\{[^}]*\} (\S+)$', text, re.M))


def run(n, seconds, mode, procs):
    tag = tempfile.mkdtemp(prefix="loopscope-bench-daemon.")
    apps = [subprocess.Popen([sys.executable, "-c", STORM % tag]) for _ in range(n)]
    procs.extend(apps)
    port = free_port()
    err = open(os.path.join(tag, "daemon.err"), "w")
    d = subprocess.Popen([os.path.join(BUILD, "loopscoped"), "--rule",
                          f"service=storm,cmdline=*{tag}*,mode={mode}", "--listen",
                          f"127.0.0.1:{port}", "--socket", os.path.join(tag, "ctl.sock")],
                         stderr=err)
    procs.append(d)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if scrape(port).count("loopscope_iterations_total{") >= n:
                break
        except OSError:
            pass
        time.sleep(0.2)
    time.sleep(3)
    c0, it0, t0 = cpu_s(d.pid), iterations(scrape(port)), time.monotonic()
    while time.monotonic() - t0 < seconds:
        time.sleep(1)
        scrape(port)  # as a Prometheus scraping every second
    c1, it1, t1 = cpu_s(d.pid), iterations(scrape(port)), time.monotonic()
    rss = rss_kb(d.pid)
    d.send_signal(signal.SIGTERM)
    stop0 = time.monotonic()
    d.wait(timeout=600)
    stop_s = time.monotonic() - stop0
    for a in apps:
        a.kill()
        a.wait()
    subprocess.run(["rm", "-rf", tag])
    return {"mode": mode, "n": n, "cpu_pct": 100 * (c1 - c0) / (t1 - t0),
            "rss_mb": rss / 1024, "cb_per_s": (it1 - it0) / (t1 - t0), "stop_s": stop_s}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=20)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--mode", choices=["light", "precise", "both"], default="both")
    a = p.parse_args()
    procs = []
    try:
        rows = [run(a.n, a.seconds, m, procs)
                for m in (["light", "precise"] if a.mode == "both" else [a.mode])]
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.kill()
                pr.wait()
    print(f"| mode | processes | callbacks/s (all, as measured) | loopscoped CPU (% of one CPU) | RSS | SIGTERM to exit |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['n']} | {r['cb_per_s']:,.0f} | {r['cpu_pct']:.1f} % | "
              f"{r['rss_mb']:.1f} MiB | {r['stop_s']:.1f} s |")


if __name__ == "__main__":
    main()
