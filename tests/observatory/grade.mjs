#!/usr/bin/env node
// Grade a local site with Mozilla's HTTP Observatory scanner and print the result as JSON.
//
//   node tests/observatory/grade.mjs --host 127.0.0.1 --https-port 8443 [--http-port 8080] [--path /]
//
// Trust the site's certificate with NODE_EXTRA_CA_CERTS=<ca.pem>, as for any Node program:
// the scanner verifies TLS (an untrusted certificate costs 40 points: hsts-invalid-cert and
// redirection-invalid-cert).
//
// Why not the package's own CLI (`mdn-http-observatory-scan HOST`) or `scan()`?
//   The npm registry offers only @mdn/mdn-http-observatory 1.4.8, whose CLI and `scan(hostname)`
//   take no port: they always fetch http://HOST/ and https://HOST/ on 80/443. Its retriever,
//   however, does: `retrieve(hostname, { httpPort, httpsPort, path })` (src/retriever/url.js,
//   the `Options` type in src/types.js) — the same hook that v1.5+ exposes as `host:port/path`.
//   So this harness calls `retrieve()` with the ports and then runs exactly the steps of the
//   package's `scan()` (src/scanner/index.js): every test of ALL_TESTS, the same grader
//   functions, the same extra-credit rule. Only the retrieval is parameterised.
//
// The package's postinstall downloads Chromium's HSTS preload list and the TLD list from
// GitHub; a closed network cannot, so it is installed with --ignore-scripts and this harness
// supplies an empty preload list (conf/hsts-preload.json = {}) when the file is missing.
// 127.0.0.1 is on no preload list, so the result is the same.
//
// Exit status: 0 with {"scan": {...}, "tests": {...}} on stdout; 1 with {"error": "..."}.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";

const require = createRequire(import.meta.url);
const PKG = "@mdn/mdn-http-observatory";
const pkgDir = path.dirname(require.resolve(`${PKG}/package.json`));

function fail(message) {
  console.log(JSON.stringify({ error: message }));
  process.exit(1);
}

const { values: args } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    "https-port": { type: "string" },
    "http-port": { type: "string" },
    path: { type: "string", default: "" },
  },
});
if (!args["https-port"] && !args["http-port"]) {
  fail("give --https-port and/or --http-port");
}

// The preload list the postinstall script would have downloaded (see above).
const preload = path.join(pkgDir, "conf", "hsts-preload.json");
if (!fs.existsSync(preload)) {
  fs.writeFileSync(preload, "{}\n");
}

const deep = (p) => import(path.join(pkgDir, "src", p));
const { retrieve } = await deep("retriever/retriever.js");
const { ALL_TESTS, ALGORITHM_VERSION, NUM_TESTS } = await deep("constants.js");
const { getGradeForScore, getScoreDescription, getScoreModifier } = await deep(
  "grader/grader.js"
);
const { MINIMUM_SCORE_FOR_EXTRA_CREDIT } = await deep("grader/charts.js");
const version = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8")).version;

// A port nobody listens on stands in for an absent HTTP (or HTTPS) side: the retriever then
// records "no response" for it, exactly as for a real site without port 80.
const CLOSED = "1";

let r;
try {
  r = await retrieve(args.host, {
    httpPort: args["http-port"] ?? CLOSED,
    httpsPort: args["https-port"] ?? CLOSED,
    path: args.path,
  });
} catch (e) {
  fail(`retrieval failed: ${e instanceof Error ? e.message : String(e)}`);
}

// From here on: the body of the package's scan() (src/scanner/index.js, v1.4.8).
if (!r.responses.auto) {
  fail("The site seems to be down.");
}
const { status } = r.responses.auto;
if (status < 200 || (status >= 400 && ![401, 403].includes(status))) {
  fail(`Site did respond with an unexpected HTTP status code ${status}.`);
}

const results = ALL_TESTS.map((test) => test(r));
let testsPassed = 0;
let scoreWithExtraCredit = 100;
let uncurvedScore = 100;
for (const result of results) {
  if (result.result) {
    result.scoreDescription = getScoreDescription(result.result);
    result.scoreModifier = getScoreModifier(result.result);
    testsPassed += result.pass ? 1 : 0;
    scoreWithExtraCredit += result.scoreModifier;
    if (result.scoreModifier < 0) {
      uncurvedScore += result.scoreModifier;
    }
  }
}
const score =
  uncurvedScore >= MINIMUM_SCORE_FOR_EXTRA_CREDIT ? scoreWithExtraCredit : uncurvedScore;
const final = getGradeForScore(score);

const tests = {};
for (const result of results) {
  const { scoreDescription, ...rest } = result;
  tests[result.constructor.name] = rest;
}

console.log(
  JSON.stringify(
    {
      scanner: { package: PKG, version, algorithmVersion: ALGORITHM_VERSION },
      target: {
        http: r.responses.http ? `http://${args.host}:${args["http-port"]}${args.path}` : null,
        https: r.responses.https ? `https://${args.host}:${args["https-port"]}${args.path}` : null,
        httpsVerified: r.responses.https?.verified ?? null,
      },
      scan: {
        algorithmVersion: ALGORITHM_VERSION,
        grade: final.grade,
        error: null,
        score: final.score,
        statusCode: status,
        testsFailed: NUM_TESTS - testsPassed,
        testsPassed,
        testsQuantity: NUM_TESTS,
        responseHeaders: { ...r.responses.auto.headers },
      },
      tests,
    },
    null,
    2
  )
);
