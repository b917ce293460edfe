#!/usr/bin/env python3
"""Replays dataset-shaped CSV files through docs/maps and checks the alerts
against an independent computation in plain Python (the csv module, no
rule language): a velocity rule and a spike-versus-average rule on
Sparkov-shaped data, a receiving-account rule on PaySim-shaped data.

The fixtures are generated here from a seed, with the quirks of the real
files: CRLF, no newline after the last row, an empty first header cell,
merchant names with quoted commas, amounts and balances in E notation.

    python3 tests/oracle/datasets.py path/to/vigil path/to/source-tree [--data DIR]

With --data DIR (the real ../shared/data samples) it checks those instead.
"""
import csv
import io
import os
import random
import subprocess
import sys
import tempfile

SPARKOV_RULES = """
rule card_velocity {
  key card_id
  when count() over 1h >= 3
}
rule spike {
  key card_id
  when count() over 30d before >= 3 and amount > 3 * avg(amount) over 30d before
}
"""

PAYSIM_RULES = """
rule mule_inflow {
  key counterparty_id
  where type == TRANSFER or type == CASH_IN
  when count() over 2h >= 2 and sum(amount) over 2h > 100000
}
"""


def sparkov_expect(path):
    rows = list(csv.DictReader(open(path, newline="")))
    out, hist = [], {}
    for r in rows:
        card, t = r["cc_num"], int(r["unix_time"]) * 1000
        amt = float(r["amt"])
        h = hist.setdefault(card, [])
        in_hour = [x for x in h if t - 3600000 <= x[0] <= t]
        if len(in_hour) + 1 >= 3:
            out.append(f"card_velocity,{card},{r['trans_num']}")
        before = [x for x in h if t - 30 * 86400000 <= x[0] <= t]
        if len(before) >= 3:
            # exact in cents, as money is
            avg = sum(round(x[1] * 100) for x in before) / len(before) / 100
            if round(amt * 100) > round(3 * avg * 100, 6):
                out.append(f"spike,{card},{r['trans_num']}")
        h.append((t, amt))
    return out


def paysim_expect(path):
    rows = list(csv.DictReader(open(path, newline="")))
    out, hist = [], {}
    for n, r in enumerate(rows, 1):
        if r["type"] not in ("TRANSFER", "CASH_IN"):
            continue
        dest, t = r["nameDest"], int(r["step"]) * 3600000
        amt = round(float(r["amount"]) * 100)
        h = hist.setdefault(dest, [])
        h.append((t, amt))
        win = [x for x in h if t - 7200000 <= x[0] <= t]
        if len(win) >= 2 and sum(x[1] for x in win) > 100000 * 100:
            out.append(f"mule_inflow,{dest},{n}")
    return out


def fmt_amount(rng, x):
    # mostly plain, sometimes E notation as the real files have for large values
    if x >= 1e6 and rng.random() < 0.5:
        return f"{x:.2E}".replace("E+0", "E+")
    return f"{x:.2f}".rstrip("0").rstrip(".") if rng.random() < 0.3 else f"{x:.2f}"


def make_sparkov(rng, path):
    cards = [str(rng.randrange(10**15, 10**16)) for _ in range(12)]
    t = 1325376000
    lines = [",trans_date_trans_time,cc_num,merchant,category,amt,first,last,gender,street,city,"
             "state,zip,lat,long,city_pop,job,dob,trans_num,unix_time,merch_lat,merch_long,"
             "is_fraud"]
    for i in range(400):
        t += rng.choice([5, 60, 600, 1800, 3600, 7200])
        card = rng.choice(cards)
        amt = rng.choice([rng.uniform(1, 80), rng.uniform(1, 80), rng.uniform(200, 1500)])
        merchant = rng.choice(['fraud_Kirlin and Sons', '"fraud_Rippin, Kub and Mann"',
                               '"fraud_Heller, Gutmann and Zieme"', 'fraud_Lind-Buckridge'])
        lines.append(f"{i},2019-01-01 00:00:00,{card},{merchant},misc_net,{amt:.2f},A,B,F,"
                     f"1 Main St,Town,NC,28654,36.07,-81.17,3495,\"Job, senior\",1988-03-09,"
                     f"tx{i:05d},{t},36.0,-82.0,0")
    with open(path, "w", newline="") as f:
        f.write("\r\n".join(lines))  # CRLF, no final newline


def make_paysim(rng, path):
    dests = [f"C{rng.randrange(10**8, 10**9)}" for _ in range(15)]
    lines = ["step,type,amount,nameOrig,oldbalanceOrg,newbalanceOrig,nameDest,oldbalanceDest,"
             "newbalanceDest,isFraud,isFlaggedFraud"]
    for i in range(500):
        step = 1 + i // 40
        typ = rng.choice(["PAYMENT", "TRANSFER", "CASH_IN", "CASH_OUT", "TRANSFER"])
        amt = rng.choice([rng.uniform(100, 9000), rng.uniform(20000, 90000),
                          rng.uniform(1e6, 2e7)])
        bal = rng.uniform(0, 3e7)
        lines.append(f"{step},{typ},{fmt_amount(rng, amt)},C{i:09d},{fmt_amount(rng, bal)},0,"
                     f"{rng.choice(dests)},0,0,0,0")
    with open(path, "w", newline="") as f:
        f.write("\r\n".join(lines))


def check(vigil, rules, data, mapfile, expect, label):
    d = tempfile.mkdtemp(prefix="vigil-datasets-")
    open(os.path.join(d, "rules.vgl"), "w").write(rules)
    open(os.path.join(d, "expect.txt"), "w").write("".join(x + "\n" for x in expect))
    p = subprocess.run([vigil, "replay", "--rules", "rules.vgl", "--input", data, "--map",
                        mapfile, "--out", "/dev/null", "--expect", "expect.txt"], cwd=d,
                       capture_output=True, text=True)
    print(f"{label}: {len(expect)} alerts expected; vigil exit {p.returncode}")
    if p.returncode != 0:
        print(p.stderr)
    return p.returncode == 0


def main():
    vigil = os.path.abspath(sys.argv[1])
    top = os.path.abspath(sys.argv[2])
    maps = os.path.join(top, "docs", "maps")
    ok = True
    if "--data" in sys.argv:
        data = sys.argv[sys.argv.index("--data") + 1]
        for name in ("sparkov_fraudTrain_head5039.csv", "sparkov_fraudTest_head5116.csv"):
            p = os.path.join(data, name)
            ok &= check(vigil, SPARKOV_RULES, p, os.path.join(maps, "sparkov.map"),
                        sparkov_expect(p), name)
        p = os.path.join(data, "paysim_head_steps1-8.csv")
        ok &= check(vigil, PAYSIM_RULES, p, os.path.join(maps, "paysim.map"), paysim_expect(p),
                    "paysim_head_steps1-8.csv")
    else:
        rng = random.Random(42)
        d = tempfile.mkdtemp(prefix="vigil-fixtures-")
        sp, ps = os.path.join(d, "sparkov.csv"), os.path.join(d, "paysim.csv")
        make_sparkov(rng, sp)
        make_paysim(rng, ps)
        ok &= check(vigil, SPARKOV_RULES, sp, os.path.join(maps, "sparkov.map"),
                    sparkov_expect(sp), "sparkov-shaped fixture")
        ok &= check(vigil, PAYSIM_RULES, ps, os.path.join(maps, "paysim.map"), paysim_expect(ps),
                    "paysim-shaped fixture")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
