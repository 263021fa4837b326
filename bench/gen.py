#!/usr/bin/env python3
"""Writes the benchmark's zone and dnsperf query files.

  gen.py zone WORK                 zone.conf (unbound local-data) and hot.txt in WORK
  gen.py miss FILE COUNT SEED      COUNT names under miss.bench, unique to this SEED
  gen.py mixed FILE COUNT SEED     unique A names, one query in ten a large TXT answer
  gen.py zipf FILE COUNT SEED      COUNT draws, Zipf-distributed (s = 1), over 100,000 names
                                   unique to this SEED: a cache's realistic mix of hits and misses
  gen.py fill FILE COUNT SEED      COUNT distinct names under hot.bench, each once, in a shuffled
                                   order: what the footprint cell fills every cache with

- miss.bench: any name under it answers A 192.0.2.1 (a redirect zone), so every run can ask
  names no proxy has seen before: true cache misses, also for proxies that cache.
- hot.bench: 1,000 fixed names, asked again and again: cache hits after the first round.
- txt700/txt1700/txt3300.bench: TXT answers of about 700, 1,700 and 3,300 octets for any name
  under them (redirect zones too), so the large answers are cache misses as well.
"""
import random
import sys
from pathlib import Path


def txt_records(name, total):
    # TXT strings are at most 255 octets; several records of up to 250 make up the size.
    lines, size, i = [], 0, 0
    while size < total - 60:
        text = chr(ord("a") + i % 26) * min(250, total - 60 - size)
        lines.append(f'  local-data: \'{name}. 300 IN TXT "{text}"\'')
        size += len(text) + 13
        i += 1
    return lines


def zone(work):
    lines = [
        '  local-zone: "miss.bench." redirect',
        '  local-data: "miss.bench. 300 IN A 192.0.2.1"',
        '  local-zone: "hot.bench." redirect',
        '  local-data: "hot.bench. 300 IN A 192.0.2.2"',
        '  local-zone: "bench." static',
    ]
    for size in (700, 1700, 3300):
        lines.append(f'  local-zone: "txt{size}.bench." redirect')
        lines += txt_records(f"txt{size}.bench", size)
    (work / "zone.conf").write_text("\n".join(lines) + "\n")
    (work / "hot.txt").write_text("".join(f"h{i}.hot.bench A\n" for i in range(1000)))


def names(path, count, seed, mixed):
    rng = random.Random(seed)
    sizes = ["txt700.bench TXT", "txt1700.bench TXT", "txt3300.bench TXT"]
    with open(path, "w") as out:
        for i in range(count):
            unique = f"s{seed}-{rng.getrandbits(48):012x}"
            if mixed and i % 10 == 9:
                out.write(f"{unique}.{sizes[i // 10 % 3]}\n")
            else:
                out.write(f"{unique}.miss.bench A\n")


ZIPF_NAMES = 100_000


def zipf(path, count, seed):
    # Rank r is drawn with weight 1/r (s = 1, as name popularity is commonly modelled): over a
    # run of a few hundred thousand queries most are repeats of the head, while the tail keeps
    # bringing names never asked before. Each run's names are its own, so every cache starts cold.
    rng = random.Random(seed)
    ranks = range(1, ZIPF_NAMES + 1)
    weights = [1 / r for r in ranks]
    with open(path, "w") as out:
        for rank in rng.choices(ranks, weights=weights, k=count):
            out.write(f"z{seed}-{rank}.hot.bench A\n")


def fill(path, count, seed):
    # Shuffled, so that a load looping over the file does not walk a cache in insertion order.
    order = list(range(count))
    random.Random(seed).shuffle(order)
    with open(path, "w") as out:
        for i in order:
            out.write(f"f{seed}-{i}.hot.bench A\n")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "zone":
        zone(Path(sys.argv[2]))
    elif mode == "zipf":
        zipf(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "fill":
        fill(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        names(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), mode == "mixed")
