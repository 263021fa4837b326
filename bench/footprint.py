#!/usr/bin/env python3
"""Where a running JVM's resident memory goes, in one line: what the RSS target is made of.

    python3 bench/footprint.py PID [JCMD]

Reads /proc/PID/smaps (resident KiB per mapping) and asks the JVM, through jcmd (the same JDK's),
for its heap's address range and its committed metaspace; everything else follows from the
mappings' names and permissions. The benchmark runs it on dot-proxy after the measured runs.
"""
import re
import subprocess
import sys

pid = sys.argv[1]
jcmd = sys.argv[2] if len(sys.argv) > 2 else "jcmd"
try:
    heap_info = subprocess.run([jcmd, pid, "GC.heap_info"], capture_output=True, text=True, check=True,
                               timeout=60).stdout
except (OSError, subprocess.SubprocessError) as e:
    sys.exit(f"footprint.py: {jcmd} {pid} GC.heap_info failed: {e}")

# Every generation line ends in [start, top, end): the heap is the span of all of them.
bounds = [int(a, 16) for line in heap_info.splitlines()
          for a in re.findall(r"0x[0-9a-f]+", line) if "[" in line]
metaspace = re.search(r"Metaspace\s+used \d+K, committed (\d+)K", heap_info)
if not bounds or not metaspace:
    sys.exit(f"footprint.py: no heap range or metaspace line in GC.heap_info:\n{heap_info}")
heap_lo, heap_hi = min(bounds), max(bounds)
# Each generation's (or G1's whole heap's) "total NK, used NK": what the live data and garbage take.
generations = re.findall(r"^\s*\S.*?\s+total (\d+)K, used (\d+)K", heap_info, re.M)
heap_committed_kib = sum(int(total) for total, _ in generations)
heap_used_kib = sum(int(used) for _, used in generations)
# Committed, not resident: the JVM touches metaspace as it commits it, so the two differ little.
metaspace_kib = int(metaspace.group(1))

parts = dict.fromkeys(["heap", "cds", "libjvm", "code", "anon", "files"], 0)
kind = None
with open(f"/proc/{pid}/smaps") as smaps:
    for line in smaps:
        mapping = re.match(r"^([0-9a-f]+)-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$", line)
        if mapping:
            start, perms, name = int(mapping.group(1), 16), mapping.group(2), mapping.group(3)
            if name.endswith(".jsa"):
                kind = "cds"
            elif name.endswith("/libjvm.so"):
                kind = "libjvm"
            elif (name and not name.startswith("[")) or name in ("[vdso]", "[vsyscall]"):
                kind = "files"
            elif heap_lo <= start < heap_hi:
                kind = "heap"
            elif "x" in perms:
                kind = "code"  # the JIT's code cache (and the interpreter's stubs)
            else:
                kind = "anon"  # metaspace, malloc, thread stacks, direct buffers, [heap]
        elif line.startswith("Rss:"):
            parts[kind] += int(line.split()[1])

mib = lambda kib: f"{kib / 1024:.1f}"
other_native = max(0, parts["anon"] - metaspace_kib)
print(f"RSS {mib(sum(parts.values()))} MiB = Java heap {mib(parts['heap'])} (used {mib(heap_used_kib)} of "
      f"{mib(heap_committed_kib)} committed) + class data {mib(parts['cds'] + metaspace_kib)} "
      f"(CDS archives {mib(parts['cds'])}, metaspace committed {mib(metaspace_kib)}) + libjvm {mib(parts['libjvm'])} "
      f"+ JIT code {mib(parts['code'])} + other native {mib(other_native)} (malloc, thread stacks, "
      f"direct buffers, compiler arenas) + other files {mib(parts['files'])} (libraries, the JDK's modules image)")
