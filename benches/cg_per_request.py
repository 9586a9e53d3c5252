#!/usr/bin/env python3
"""Instructions per request by function, from two callgrind runs of one
build with N1 and N2 requests (benches/instructions.sh keeps them):

    python3 benches/cg_per_request.py RUN_DIR/cg-tilegate-1000.out RUN_DIR/cg-tilegate-6000.out 1000 6000

Start-up and shutdown cancel out in the difference; what is left is the
cost of one request, self cost per function (callgrind_annotate's
exclusive counts), largest first."""
import re
import subprocess
import sys


def self_costs(path):
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", path],
        check=True, capture_output=True, text=True).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([\s\d.]+%\)\s+(.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            fn = re.sub(r"\s\[[^\]]*\]$", "", m.group(2))
            fn = re.sub(r"^\?\?\?:", "", fn)
            costs[fn] = costs.get(fn, 0) + int(m.group(1).replace(",", ""))
    return costs


def main():
    a, b, n1, n2 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    top = int(sys.argv[5]) if len(sys.argv) > 5 else 40
    ca, cb = self_costs(a), self_costs(b)
    per = {f: (cb.get(f, 0) - ca.get(f, 0)) / (n2 - n1) for f in set(ca) | set(cb)}
    total = sum(per.values())
    print(f"{total:10.0f}  instructions per request in all")
    for f, v in sorted(per.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{v:10.0f}  {f[:150]}")


if __name__ == "__main__":
    main()
