#!/usr/bin/env node
// receiver.js - a webhook endpoint for the end-to-end sink tests
// (tests/cli/sinks.sh): it takes vigil's deliveries over real HTTP, checks
// each one with an independent Standard Webhooks implementation (npm
// "standardwebhooks", pinned in package.json) and writes down every attempt,
// while following a script of outages.
//
//   node receiver.js --out FILE --secret-file FILE [options]
//
//   --out FILE            one JSON line per attempt: {"t": ms since the epoch,
//                         "id": webhook-id, "key": the body's "key",
//                         "valid": true when it verifies, "status": the answer,
//                         "retry_after": seconds sent with it (503 only),
//                         "body_id": the body's "id"}
//   --secret-file FILE    whsec_ secrets separated by white space (kept off
//                         the command line); a delivery is valid under any
//   --host H              address to listen on (default 127.0.0.1; "::" takes
//                         IPv6 and IPv4 loopback both)
//   --port N              port (default 0: any); the one chosen is printed
//   --unavailable MS      answer 503 with Retry-After for the first MS ms
//   --retry-after S       the Retry-After of those answers, in seconds (default 1)
//   --refuse FROM TO      between FROM and TO ms, close the listening socket
//                         and every open connection: connection refused
//   --flaky CHARS N       answer 500 (no Retry-After) to the first N attempts
//                         of each delivery whose webhook-id ends in one of
//                         CHARS (attempts counted whatever their answer), so
//                         the retry schedule itself shows in the log
//   --delay MS            wait MS ms before each 2xx answer (a slow receiver)
//   --capture FILE N      the raw headers and body of the first N valid
//                         deliveries, one {"id","timestamp","signature","body"}
//                         line each (the input of verify.js)
//
// Times count from the first request received, so an outage lands on the
// deliveries however long the engine takes to start. A delivery that does
// not verify is answered 401 (and so retried, and so visible in the log);
// outside the scripted outage every valid one is answered 204. Prints
// "listening on HOST:PORT" on stdout once it takes connections; exits 0 on
// SIGTERM or SIGINT.
"use strict";

const fs = require("fs");
const http = require("http");
const { Webhook } = require("standardwebhooks");

function usage(why) {
    process.stderr.write(`receiver.js: ${why}\n` +
        "usage: node receiver.js --out FILE --secret-file FILE [--host H] [--port N]\n" +
        "       [--unavailable MS] [--retry-after S] [--refuse FROM TO] [--flaky CHARS N]\n" +
        "       [--delay MS]\n" +
        "       [--capture FILE N]\n");
    process.exit(2);
}

function number(v, what) {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < 0)
        usage(`${what} wants a number of 0 or more, not '${v}'`);
    return n;
}

const opt = {
    host: "127.0.0.1", port: 0, unavailable: 0, retryAfter: 1, refuse: null, delay: 0,
    out: null, secretFile: null, capture: null, captureN: 0, flaky: "", flakyN: 0,
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--out") opt.out = argv[++i];
    else if (a === "--secret-file") opt.secretFile = argv[++i];
    else if (a === "--host") opt.host = argv[++i];
    else if (a === "--port") opt.port = number(argv[++i], a);
    else if (a === "--unavailable") opt.unavailable = number(argv[++i], a);
    else if (a === "--retry-after") opt.retryAfter = number(argv[++i], a);
    else if (a === "--refuse") {
        opt.refuse = [number(argv[i + 1], a), number(argv[i + 2], a)];
        i += 2;
    } else if (a === "--flaky") {
        opt.flaky = argv[i + 1] || usage("--flaky wants the last characters of ids");
        opt.flakyN = number(argv[i + 2], a);
        i += 2;
    } else if (a === "--delay") opt.delay = number(argv[++i], a);
    else if (a === "--capture") {
        opt.capture = argv[++i];
        opt.captureN = number(argv[++i], a);
    } else usage(`unknown argument '${a}'`);
}
if (!opt.out || !opt.secretFile)
    usage("--out and --secret-file are required");

let hooks;
try {
    const secrets = fs.readFileSync(opt.secretFile, "utf8").split(/\s+/).filter((s) => s !== "");
    if (secrets.length === 0)
        usage(`${opt.secretFile} holds no secret`);
    hooks = secrets.map((s) => new Webhook(s));
} catch (e) {
    usage(`${opt.secretFile}: ${e.message}`);
}
const out = fs.openSync(opt.out, "a");
const capture = opt.capture ? fs.openSync(opt.capture, "a") : null;
let captured = 0;
const attempts = new Map(); // webhook-id -> attempts seen

function verifies(body, headers) {
    for (const wh of hooks) {
        try {
            wh.verify(body, headers);
            return true;
        } catch (e) {
            // a rejection under this key; another may accept it
        }
    }
    return false;
}

let t0 = 0; // ms since the epoch of the first request; 0: none yet
let server = null;
let port = opt.port;

function handle(req, res) {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
        const t = Date.now();
        if (t0 === 0) {
            t0 = t;
            if (opt.refuse) {
                setTimeout(refuseStart, opt.refuse[0]);
                setTimeout(refuseEnd, opt.refuse[1]);
            }
        }
        const body = Buffer.concat(chunks);
        const id = req.headers["webhook-id"] || null;
        let key = null;
        let bodyId = null;
        try {
            const j = JSON.parse(body.toString("utf8"));
            key = j.key === undefined ? null : j.key;
            bodyId = j.id === undefined ? null : j.id;
        } catch (e) {
            // not JSON: key stays null, and the check of keys says so
        }
        const valid = req.method === "POST" && verifies(body, req.headers);
        if (valid && capture !== null && captured < opt.captureN) {
            captured++;
            fs.writeSync(capture, JSON.stringify({
                id: req.headers["webhook-id"], timestamp: req.headers["webhook-timestamp"],
                signature: req.headers["webhook-signature"], body: body.toString("utf8"),
            }) + "\n");
        }
        const seen = (attempts.get(id) || 0) + 1;
        attempts.set(id, seen);
        let status = 204;
        let retryAfter;
        if (!valid)
            status = 401;
        else if (t - t0 < opt.unavailable) {
            status = 503;
            retryAfter = opt.retryAfter;
        } else if (seen <= opt.flakyN && opt.flaky.includes(id.slice(-1))) {
            status = 500;
        }
        const rec = { t, id, key, valid, status };
        if (retryAfter !== undefined)
            rec.retry_after = retryAfter;
        rec.body_id = bodyId;
        const answer = () => {
            // written down before the answer leaves, so a log line's t is
            // never after the moment the engine saw the answer
            fs.writeSync(out, JSON.stringify(rec) + "\n");
            const headers = retryAfter !== undefined ? { "Retry-After": String(retryAfter) } : {};
            res.writeHead(status, headers);
            res.end();
        };
        if (status === 204 && opt.delay > 0) {
            setTimeout(() => {
                rec.t = Date.now();
                answer();
            }, opt.delay);
        } else {
            answer();
        }
    });
}

function listen(then) {
    server = http.createServer({ keepAliveTimeout: 30000 }, handle);
    server.on("error", (e) => {
        process.stderr.write(`receiver.js: can't listen on ${opt.host}:${port}: ${e.message}\n`);
        process.exit(1);
    });
    server.listen(port, opt.host, () => {
        port = server.address().port;
        if (then)
            then();
    });
}

// The outage: no listening socket and no open connection, so a connect is
// refused and a kept-alive connection is reset.
function refuseStart() {
    if (server === null)
        return;
    const s = server;
    server = null;
    s.close();
    s.closeAllConnections();
}

function refuseEnd() {
    if (server === null)
        listen(null);
}

function stop() {
    if (server !== null)
        server.closeAllConnections();
    fs.closeSync(out);
    if (capture !== null)
        fs.closeSync(capture);
    process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

listen(() => {
    const h = opt.host.includes(":") ? `[${opt.host}]` : opt.host;
    process.stdout.write(`listening on ${h}:${port}\n`);
});
