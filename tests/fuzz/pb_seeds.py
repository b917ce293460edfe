#!/usr/bin/env python3
"""Writes the binary seeds of tests/fuzz/corpus/pb/ (and the signed one of
corpus/webhook/) again: protobuf messages of proto/vigil.proto encoded by hand
(stdlib only), and pieces of `vigil gen --format pb` output.

    python3 tests/fuzz/pb_seeds.py build/dev/tools/vigil

The first byte of a pb seed is fuzz_pb's mode: 0 Event, 1 EventBatch,
2 BatchReply, 3 a `pb` input file (length-delimited Events).
"""
import base64
import hashlib
import hmac
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(num, wire):
    return varint(num << 3 | wire)


def vint(num, v):
    return key(num, 0) + varint(v)


def ln(num, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return key(num, 2) + varint(len(payload)) + payload


def dbl(num, v):
    return key(num, 1) + struct.pack("<d", v)


def attr(k, v):
    return ln(1, k) + ln(2, v)


def txn(id_, time_ms, amount_minor, currency="EUR", extra=b""):
    return (ln(1, id_) + vint(2, time_ms) + ln(3, "acct-1") + ln(4, "card-1") + vint(5, 1) +
            vint(6, 1) + vint(7, 2) + vint(8, amount_minor) + ln(9, currency) + extra)


def event_txn(body):
    return ln(1, body)


def event_account(body):
    return ln(2, body)


def delimited(msg):
    return varint(len(msg)) + msg


def gen_records(vigil):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "g.pb")
        subprocess.run([vigil, "gen", "--accounts", "5", "--events", "30", "--seed", "7",
                        "--format", "pb", "-o", out], check=True, stderr=subprocess.DEVNULL)
        data = open(out, "rb").read()
    recs, pos = [], 0
    while pos < len(data):
        n, shift, start = 0, 0, pos
        while True:
            b = data[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        recs.append((data[start:pos + n], data[pos:pos + n]))
        pos += n
    return recs


def write(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def main():
    vigil = sys.argv[1]
    recs = gen_records(vigil)
    pb = os.path.join(HERE, "corpus", "pb")
    txns = [r for r in recs if r[1][0] == 0x0A]
    accounts = [r for r in recs if r[1][0] == 0x12]

    rich = event_txn(txn(
        "t-rich", 1714557600000, 123456, "KWD",
        ln(12, "cp-9") + vint(10, 5000) + vint(11, (1 << 64) - 42) + ln(16, "Caf\xe9 \U0001F600") +
        ln(18, "NG") + dbl(19, 52.52) + dbl(20, -13.4) + ln(22, "10.0.0.1") +
        ln(23, attr("user_agent", "curl/8.4.0")) + ln(23, attr("", "")) +
        ln(23, attr("payee", "x\x00y"))))
    account = event_account(ln(1, "a-1") + vint(2, 1714557600000) + ln(3, "acct-1") +
                            ln(4, "login") + vint(5, 1) + ln(8, "DE") + dbl(9, float("nan")) +
                            ln(11, attr("agent", "Firefox")))

    write(pb, "event_gen_txn", b"\x00" + txns[0][1])
    write(pb, "event_gen_account", b"\x00" + accounts[0][1])
    write(pb, "event_optionals_attrs_kwd", b"\x00" + rich)
    write(pb, "event_account_nan_lat", b"\x00" + account)
    write(pb, "event_neither_txn_nor_account", b"\x00")
    write(pb, "event_cut_in_half", b"\x00" + txns[1][1][:len(txns[1][1]) // 2])
    write(pb, "event_jpy_negative_amount",
          b"\x00" + event_txn(txn("t-jpy", 1, (1 << 64) - 500, "JPY")))

    batch = b"".join(ln(1, r[1]) for r in recs[:3]) + vint(2, 1) + ln(3, "fuzz-seed")
    write(pb, "batch_three_with_decisions", b"\x01" + batch)
    write(pb, "batch_mixed_streams", b"\x01" + ln(1, rich) + ln(1, account) + ln(1, b""))
    # the middle event has a string field sent as a varint: the batch does not
    # decode as a whole, each event is decoded on its own
    bad = event_txn(vint(1, 7))
    write(pb, "batch_bad_middle_event", b"\x01" + ln(1, txns[0][1]) + ln(1, bad) +
          ln(1, txns[1][1]))
    cut = ln(1, txns[0][1]) + ln(1, txns[1][1])
    write(pb, "batch_cut_short", b"\x01" + cut[:-20])
    write(pb, "batch_empty", b"\x01")

    hit = ln(1, "velocity_burst") + vint(2, 60) + vint(3, 3) + ln(4, "5 txns in 1m") + vint(5, 1)
    decision = ln(1, "t-1") + vint(2, 3) + vint(3, 95) + ln(4, hit) + ln(4, ln(1, "r2"))
    reply = (vint(1, 2) + vint(2, 1) +
             ln(3, vint(1, 4) + ln(2, "t-9") + ln(3, "time: not a time") + ln(4, "bad_time")) +
             ln(4, decision) + ln(4, ln(1, "t-2") + vint(5, 1)))
    write(pb, "reply_rejection_and_decisions", b"\x02" + reply)
    write(pb, "reply_error_permanent",
          b"\x02" + ln(5, "the request is over max_message_bytes") + vint(6, 1))

    write(pb, "file_gen_8_events", b"\x03" + b"".join(r[0] for r in recs[:8]))
    whole = b"".join(r[0] for r in recs[:4])
    write(pb, "file_gen_cut_mid_record", b"\x03" + whole[:-30])
    write(pb, "file_huge_length_prefix", b"\x03" + varint(1 << 40) + b"\x0a\x00")

    # a delivery signed as adapters/sign.c signs it, for fuzz_webhook's verify mode
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    k = base64.b64decode(secret[6:])
    body = b'{"type":"alert.created","rule":"r1"}'
    sig = base64.b64encode(hmac.new(k, b"msg_1.1714557600." + body, hashlib.sha256).digest())
    write(os.path.join(HERE, "corpus", "webhook"), "verify_valid_signature",
          b"2\n" + secret.encode() + b"\nmsg_1\n1714557600\nv1," + sig + b"\n" + body)


if __name__ == "__main__":
    main()
