"""Truth for tests/test_it_pycode.c: CPython's own line for every instruction.

Defines code objects with known shapes (below, and a generated module with
extreme line tables), then prints for each one its id() (the address), its
names and, for instruction byte offsets, the line CPython itself reports:

  FILE <this file's co_filename>
  CODE <id> <firstlineno> <nbytes> <qualname> <filename...>
  LINES <id> <offset>:<line> ...      co_lines() (3.10+), dis.findlinestarts (3.8, 3.9)
  ADDR2LINE <id> <offset>:<line> ...  PyCode_Addr2Line(), the C function
                                       tracebacks use, called through ctypes
  NOTCODE <id of a function> <id of a str>  (not code objects)
  READY <number of code objects>

<line> is -1 where CPython has no line (co_lines() says None). <qualname> is
co_qualname on 3.11+ and co_name before (older code objects have no
qualname). Offsets are every code unit (2 bytes, the CACHE entries of 3.11+
included), except in the generated `huge` function (a line table over 64
KiB), sampled every 61 code units. Then the script waits for a command on
stdin:
  reuse -> free the copy of victim's code object, make new code objects
           (renamed "reborn", first line 4242) until one lands at the same
           address, print REUSED <id> <firstlineno> <qualname> <offset>:<line>
           (or REUSED none) and wait again
  EOF   -> exit
"""
import bisect
import ctypes
import dis
import sys

V = sys.version_info[:2]


def short():
    return 1


def multi(a, b):
    x = a + b
    if x > 10:
        y = [
            a,
            b,
        ]
    else:
        y = None
    for i in range(3):
        x += i
    return x, y


lam = lambda v: (v +
                 1)


class Outer:
    class Inner:
        def method(self, n):
            total = 0
            while n:
                total += n
                n -= 1
            return total


def with_try(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return str(e)
    finally:
        short()


def closure(k):
    def inner(v):
        return [v * i
                for i in range(k)]
    return inner


async def coro(fut):
    await fut
    return 2


def gen(n):
    while n:
        yield n
        n -= 1


def victim(a):
    return a + 1


def generated_source():
    """A module whose functions stress the tables' extended cases: many small
    deltas, gaps of more than 127/255 lines (split line deltas, multi-byte
    varints), one line with more than 255 bytes of bytecode (split address
    deltas, many location entries), a call whose last instructions go back
    200 lines to its first line (a negative delta beyond -128), and a table
    over 64 KiB (`huge`)."""
    s = ["def long_body(a, b):", "    x = a"]
    s += ["    x = x + %d" % i for i in range(300)]
    s += ["    # gap"] * 300
    s += ["    y = (" + ", ".join(["a"] * 200) + ")"]
    s += ["    z = multi(a,"] + [""] * 200 + ["              b)"]
    s += [""] * 5000
    s += ["    return x, y, z"]
    s += ["", "", "def huge(x):"] + ["    x"] * 40000 + ["    return x"]
    return "\n".join(s) + "\n"


GEN = {"multi": multi}
exec(compile(generated_source(), "<loopscope generated>", "exec"), GEN)


def svarint(v):
    """Objects/locations.md: sign in the low bit, then 6-bit chunks, least
    significant first, 0x40 on every chunk but the last."""
    u = (-v << 1) | 1 if v < 0 else v << 1
    out = []
    while u >= 64:
        out.append(64 | (u & 63))
        u >>= 6
    return out + [u]


def no_columns(code):
    """3.11+: a copy of code whose location table uses only the entry kinds
    the compiler here does not emit unless run with -X no_debug_ranges: 13
    (line delta, no columns), with deltas from 0 to +-70000, and 15 (no
    location); lengths cycle through 1..8 code units."""
    units = len(code.co_code) // 2
    deltas = [0, 1, -1, 31, -32, 100, -100, 5000, -5000, 70000, -70000, 2]
    table, i, k = [], 0, 0
    while i < units:
        n = min(1 + k % 8, units - i)
        if k == 5:
            table.append(0x80 | 15 << 3 | (n - 1))
        else:
            table += [0x80 | 13 << 3 | (n - 1)] + svarint(deltas[k % len(deltas)])
        i, k = i + n, k + 1
    return code.replace(co_linetable=bytes(table), co_name="no_columns",
                        co_qualname="no_columns", co_firstlineno=80000)


addr2line = ctypes.pythonapi.PyCode_Addr2Line
addr2line.argtypes = [ctypes.py_object, ctypes.c_int]
addr2line.restype = ctypes.c_int


def nbytes(code):
    return len(code.co_code)


def truth_lines(code, offsets):
    """The line of each offset as Python's own tools say it."""
    if V >= (3, 10):
        line = {}
        for start, end, ln in code.co_lines():
            for o in range(start, end):
                line[o] = -1 if ln is None else ln
        return [line.get(o, -1) for o in offsets]
    starts = sorted(dis.findlinestarts(code))
    keys = [start for start, _ in starts]
    out = []
    for o in offsets:
        i = bisect.bisect_right(keys, o)
        out.append(starts[i - 1][1] if i else -1)
    return out


def codes(root):
    todo, seen = [root], []
    while todo:
        c = todo.pop(0)
        seen.append(c)
        todo += [k for k in c.co_consts if isinstance(k, type(c))]
    return seen


def qualname(code):
    return code.co_qualname if V >= (3, 11) else code.co_name


def report(code):
    n = nbytes(code)
    step = 2 * 61 if code.co_name == "huge" else 2
    offsets = list(range(0, n, step))
    if offsets[-1] != n - 2:
        offsets.append(n - 2)
    mine = truth_lines(code, offsets)
    theirs = [addr2line(code, o) for o in offsets]
    print("CODE %d %d %d %s %s" % (id(code), code.co_firstlineno, n, qualname(code),
                                   code.co_filename))
    print("LINES %d %s" % (id(code), " ".join("%d:%d" % p for p in zip(offsets, mine))))
    print("ADDR2LINE %d %s" % (id(code), " ".join("%d:%d" % p for p in zip(offsets, theirs))))


# A copy of victim's code that nothing else refers to (victim's own is also
# held by the module's co_consts), so that "reuse" can free it.
victim_code = victim.__code__.replace(co_firstlineno=victim.__code__.co_firstlineno)
all_codes = codes(sys._getframe().f_code)
all_codes += [victim_code, GEN["long_body"].__code__, GEN["huge"].__code__]
if V >= (3, 11):
    all_codes.append(no_columns(GEN["long_body"].__code__))
print("FILE %s" % sys._getframe().f_code.co_filename)
for c in all_codes:
    report(c)
print("NOTCODE %d %d" % (id(short), id(short.__code__.co_name)))
print("READY %d" % len(all_codes), flush=True)
del c

keep = []
for cmd in sys.stdin:
    if cmd.strip() != "reuse" or victim_code is None:
        continue
    old = id(victim_code)
    if V >= (3, 11):
        template = victim_code.replace(co_name="reborn", co_qualname="reborn",
                                       co_firstlineno=4242)
    else:
        template = victim_code.replace(co_name="reborn", co_firstlineno=4242)
    # by identity: code objects compare by value, victim's own is equal
    all_codes = [c for c in all_codes if c is not victim_code]
    victim_code = None  # freed here: its last reference
    got = None
    for _ in range(10000):
        c = template.replace()
        if id(c) == old:
            got = c
            break
        keep.append(c)
    if got is None:
        print("REUSED none", flush=True)
    else:
        last = nbytes(got) - 2
        print("REUSED %d %d %s %d:%d" % (id(got), got.co_firstlineno, qualname(got), last,
                                         addr2line(got, last)), flush=True)
