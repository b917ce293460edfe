#!/usr/bin/env node
// verify.js - checks webhook deliveries signed by vigil with an independent
// implementation of Standard Webhooks: the reference JavaScript library,
// npm "standardwebhooks" (pinned in package.json). tests/cli/sign.sh runs it.
//
//   node verify.js [--expect-fail] DELIVERIES.jsonl SECRET_FILE
//
// DELIVERIES holds one JSON object per line: {"id", "timestamp",
// "signature", "body"}, the three webhook-* headers and the raw body of one
// delivery. SECRET_FILE holds whsec_ secrets separated by whitespace (read
// from a file so that they stay off the command line); a delivery verifies
// when it does under any of them, as a receiver rotating keys would check.
//
// Exit status: 0 when every delivery verifies (with --expect-fail: when
// every one is rejected), 1 otherwise, 2 on a usage or input error. Only a
// WebhookVerificationError counts as a rejection: anything else the library
// throws is a failure either way, so a broken setup cannot pass as "rejected".
"use strict";

const fs = require("fs");
const { Webhook, WebhookVerificationError } = require("standardwebhooks");

function usage(why) {
    process.stderr.write(`verify.js: ${why}\n` +
        "usage: node verify.js [--expect-fail] DELIVERIES.jsonl SECRET_FILE\n");
    process.exit(2);
}

// "verified", "rejected: <why>" or "error: <why>" for one delivery.
function check(hooks, d) {
    const headers = {
        "webhook-id": d.id,
        "webhook-timestamp": String(d.timestamp),
        "webhook-signature": d.signature,
    };
    let rejected = "";
    for (const wh of hooks) {
        try {
            wh.verify(Buffer.from(d.body, "utf8"), headers);
            return "verified";
        } catch (e) {
            if (!(e instanceof WebhookVerificationError))
                return `error: ${e.name}: ${e.message}`;
            rejected = e.message;
        }
    }
    return `rejected: ${rejected}`;
}

function main(argv) {
    const expectFail = argv[0] === "--expect-fail";
    const args = expectFail ? argv.slice(1) : argv;
    if (args.length !== 2)
        usage("want a deliveries file and a secret file");
    let lines, secrets;
    try {
        lines = fs.readFileSync(args[0], "utf8").split("\n").filter((l) => l.trim() !== "");
        secrets = fs.readFileSync(args[1], "utf8").split(/\s+/).filter((s) => s !== "");
    } catch (e) {
        usage(e.message);
    }
    if (lines.length === 0 || secrets.length === 0)
        usage("no deliveries or no secret: nothing would be checked");
    const hooks = secrets.map((s) => new Webhook(s));
    let bad = 0;
    lines.forEach((line, i) => {
        let outcome;
        try {
            outcome = check(hooks, JSON.parse(line));
        } catch (e) {
            outcome = `error: line is not a delivery record: ${e.message}`;
        }
        const ok = expectFail ? outcome.startsWith("rejected") : outcome === "verified";
        if (!ok) {
            bad++;
            process.stderr.write(`verify.js: ${args[0]}:${i + 1}: ${outcome}` +
                (expectFail && outcome === "verified" ? " (expected a rejection)" : "") + "\n");
        }
    });
    const what = expectFail ? "rejected" : "verified";
    process.stdout.write(`verify.js: ${lines.length - bad} of ${lines.length} deliveries ` +
        `${what} as expected by standardwebhooks\n`);
    process.exit(bad === 0 ? 0 : 1);
}

main(process.argv.slice(2));
