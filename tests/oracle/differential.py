#!/usr/bin/env python3
"""Differential test of `vigil replay` against an independent oracle.

For each seeded case it makes random rules (a `where`, a key, one window
aggregate compared with a threshold, sometimes `suppress`) and random events,
computes the alerts SPEC §2 "Semantics" says they raise by brute force, here
in Python and from the definitions alone, and runs `vigil replay --expect`
on the same files. Any difference fails the test and leaves the case's files
behind to reproduce it.

    python3 tests/oracle/differential.py path/to/vigil [cases] [seed]
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile

AGGS = ["count", "count_if", "sum", "avg", "min", "max", "distinct", "seen"]
WINDOWS = ["range", "before", "history"]
BASE = 1714550400000  # 2024-05-01T08:00:00Z


def rule_text(r):
    fld = r["field"]
    arg = {"count": "", "count_if": f"{fld} > {r['cut']}", "distinct": "merchant_id",
           "seen": "merchant_id"}.get(r["agg"], fld)
    fn = "count" if r["agg"] == "count_if" else r["agg"]
    win = {"range": f"over {r['w']}m", "before": f"over {r['w']}m before",
           "history": "over history"}[r["win"]]
    agg = f"{fn}({arg}) {win}"
    when = agg if r["agg"] == "seen" else f"{agg} {r['op']} {r['thr']}"
    lines = [f"rule {r['name']} {{", f"  key {r['key']}"]
    if r["where"]:
        lines.append(f"  where {r['where']}")
    lines.append(f"  when {when}")
    if r["suppress"]:
        lines.append(f"  suppress {r['suppress']}m")
    lines.append("}")
    return "\n".join(lines)


def passes_where(r, e):
    w = r["where"]
    if not w:
        return True
    if w.startswith("channel"):
        return e["channel"] == w.split()[-1]
    return e["amount"] > float(w.split()[-1])


def value(r, e):
    """The aggregate's argument on event e, or None when missing."""
    if r["agg"] in ("distinct", "seen"):
        # an empty cell sets nothing, and an unset string field is "" (its
        # proto3 zero value), a value like any other; lat is optional: missing
        return e["merchant_id"]
    if r["agg"] == "count":
        return 1
    x = e[r["field"]]
    if r["agg"] == "count_if":
        return None if x is None else (x > r["cut"])
    return x


def aggregate(r, entries, cur):
    """entries: (time, value) of the window, in arrival order."""
    vals = [v for _, v in entries if v is not None]
    a = r["agg"]
    if a == "count":
        return len(entries)
    if a == "count_if":
        return sum(1 for v in vals if v)
    if a == "sum":
        return round(sum(vals), 6)
    if a == "avg":
        return round(sum(vals) / len(vals), 6) if vals else None
    if a == "min":
        return min(vals) if vals else None
    if a == "max":
        return max(vals) if vals else None
    if a == "distinct":
        return len(set(vals))
    if a == "seen":
        return None if cur is None else cur in vals
    raise ValueError(a)


def oracle(rules, events):
    seen_ids = set()
    state = {}  # (rule, key) -> list of (arrival, time, value); last alert time
    last = {}
    out = []
    for e in events:
        if e["id"] in seen_ids:
            continue
        seen_ids.add(e["id"])
        for r in rules:
            if not passes_where(r, e):
                continue
            key = e[r["key"]]
            if key == "":
                continue
            hist = state.setdefault((r["name"], key), [])
            v = value(r, e)
            t = e["time"]
            wms = r["w"] * 60000
            if r["win"] == "history":
                window = [(tt, vv) for _, tt, vv in hist]
            elif r["win"] == "before" or r["agg"] == "seen":
                window = [(tt, vv) for _, tt, vv in hist if t - wms <= tt <= t]
            else:
                window = [(tt, vv) for _, tt, vv in hist if t - wms <= tt <= t] + [(t, v)]
            x = aggregate(r, window, v)
            hist.append((len(hist), t, v))
            if r["agg"] == "seen":
                fire = x is True
            elif x is None:
                fire = False
            else:
                thr = r["thr"]
                fire = {">": x > thr + 1e-9, ">=": x >= thr - 1e-9, "<": x < thr - 1e-9}[r["op"]]
            if not fire:
                continue
            k = (r["name"], key)
            if r["suppress"] and k in last and t < last[k] + r["suppress"] * 60000:
                continue
            last[k] = t
            out.append(f"{r['name']},{key},{e['id']}")
    return out


def make_case(rng):
    rules = []
    for i in range(rng.randint(1, 4)):
        agg = rng.choice(AGGS)
        win = rng.choice(WINDOWS if agg not in ("distinct", "seen") else ["range", "before"])
        field = rng.choice(["amount", "lat"])
        op = rng.choice([">", ">=", "<"])
        thr = {"count": rng.randint(0, 4), "count_if": rng.randint(0, 3),
               "distinct": rng.randint(0, 3)}.get(agg, round(rng.uniform(0, 60), 2))
        rules.append({
            "name": f"r{i}", "agg": agg, "win": win, "field": field, "op": op, "thr": thr,
            "w": rng.choice([1, 5, 10, 30]), "cut": rng.choice([5, 20, 40]),
            "key": rng.choice(["account_id", "card_id"]),
            "where": rng.choice(["", "", "channel == ECOMMERCE", "amount > 3"]),
            "suppress": rng.choice([0, 0, 5, 20]),
        })
    events = []
    t = BASE
    for n in range(rng.randint(5, 60)):
        # mostly forward, sometimes a tie, sometimes exactly a window edge
        t += rng.choice([0, 0, 30000, 60000, 60000, 300000, 600000, 1800000])
        # now and then an event that arrives late (less than the shortest window)
        late = rng.choice([0] * 9 + [rng.randint(1, 59999)])
        ident = f"e{n}" if rng.random() > 0.05 or n == 0 else f"e{rng.randrange(n)}"
        events.append({
            "id": ident, "time": t - late,
            "account_id": rng.choice(["a1", "a2", "a3", ""]),
            "card_id": rng.choice(["c1", "c2"]),
            "channel": rng.choice(["ECOMMERCE", "POS"]),
            "amount": round(rng.uniform(0, 50), 2),
            "lat": None if rng.random() < 0.3 else round(rng.uniform(0, 50), 2),
            "merchant_id": rng.choice(["m1", "m2", "m3", ""]),
        })
    return rules, events


def write_case(d, rules, events):
    with open(os.path.join(d, "rules.vgl"), "w") as f:
        f.write("\n".join(rule_text(r) for r in rules) + "\n")
    with open(os.path.join(d, "events.csv"), "w") as f:
        f.write("id,time,account_id,card_id,channel,amount,currency,lat,merchant_id\n")
        for e in events:
            lat = "" if e["lat"] is None else f"{e['lat']:.2f}"
            f.write(f"{e['id']},{e['time']},{e['account_id']},{e['card_id']},{e['channel']},"
                    f"{e['amount']:.2f},EUR,{lat},{e['merchant_id']}\n")
    with open(os.path.join(d, "expect.txt"), "w") as f:
        for line in oracle(rules, events):
            f.write(line + "\n")


def main():
    vigil = os.path.abspath(sys.argv[1])
    cases = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 20261126
    rng = random.Random(seed)
    failed = 0
    for c in range(cases):
        rules, events = make_case(rng)
        d = tempfile.mkdtemp(prefix=f"vigil-diff-{c}-")
        write_case(d, rules, events)
        p = subprocess.run([vigil, "replay", "-q", "--rules", "rules.vgl", "--input",
                            "events.csv", "--out", "/dev/null", "--expect", "expect.txt"],
                           cwd=d, capture_output=True, text=True)
        if p.returncode == 0 and c % 3 == 0:
            # the same with every key written to LMDB and read back all the time
            p = subprocess.run([vigil, "replay", "-q", "--rules", "rules.vgl", "--input",
                                "events.csv", "--out", "/dev/null", "--expect", "expect.txt",
                                "--cache-keys", "1"], cwd=d, capture_output=True, text=True)
        if p.returncode != 0:
            failed += 1
            if failed <= 3:
                print(f"FAIL case {c} (files kept in {d}):\n{p.stderr}")
                print(open(os.path.join(d, "rules.vgl")).read())
            continue
        shutil.rmtree(d)
    print(f"differential: {cases} cases, {failed} failed (seed {seed})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
