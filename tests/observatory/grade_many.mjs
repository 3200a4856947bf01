#!/usr/bin/env node
// Grade many paths of one local site with Mozilla's HTTP Observatory, in one Node process.
//
//   node tests/observatory/grade_many.mjs < cases.json
//
// stdin: {"host": "127.0.0.1", "cases": [{"id": "...", "path": "/c/x", "httpsPort": "8443",
//          "httpPort": "8080", "host": "name"}, ...]}   (a missing port means "nothing
//          listens there"; a case's "host" replaces the default)
//        optional: "resolve": {"www.example.co.uk": "127.0.0.1", ...} answers those names
//          without DNS (like curl --resolve); "preload": {"host": {"includeSubDomains": true,
//          "mode": "force-https"}, ...} is the HSTS preload list (the package's
//          conf/hsts-preload.json format, which its install step would have downloaded).
// stdout: {"<id>": {"grade", "score", "tests": {name: {result, scoreModifier, pass}},
//          "algorithmVersion", "version"} or {"error": "..."}, ...}  ("version": the
//          package's own, from its package.json)
//
// Each case runs exactly what grade.mjs runs (the package's retrieve() with ports, then the
// body of its scan(), src/scanner/index.js of v1.4.8); batching only saves starting Node
// once per case. Trust the site's CA with NODE_EXTRA_CA_CERTS, as for grade.mjs.

import dns from "node:dns";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const PKG = "@mdn/mdn-http-observatory";
const pkgDir = path.dirname(require.resolve(`${PKG}/package.json`));

const preload = path.join(pkgDir, "conf", "hsts-preload.json");
if (!fs.existsSync(preload)) {
  fs.writeFileSync(preload, "{}\n");
}

const deep = (p) => import(path.join(pkgDir, "src", p));
const { retrieve } = await deep("retriever/retriever.js");
const { ALL_TESTS, ALGORITHM_VERSION } = await deep("constants.js");
const { version } = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8"));
const { getGradeForScore, getScoreModifier } = await deep("grader/grader.js");
const { MINIMUM_SCORE_FOR_EXTRA_CREDIT } = await deep("grader/charts.js");

const { hsts } = await deep("analyzer/hsts.js");

const CLOSED = "1";
const input = JSON.parse(fs.readFileSync(0, "utf8"));
const out = {};

// Names of the corpus that no DNS knows: Node's sockets look names up through dns.lookup.
const resolve = input.resolve ?? {};
const lookup = dns.lookup;
dns.lookup = function (host, options, callback) {
  if (typeof options === "function") {
    callback = options;
    options = {};
  }
  const address = resolve[host];
  if (address === undefined) {
    return lookup.call(this, host, options, callback);
  }
  if (options && options.all) {
    return process.nextTick(callback, null, [{ address, family: 4 }]);
  }
  return process.nextTick(callback, null, address, 4);
};

// The preload list: the package reads conf/hsts-preload.json once into this Map.
const preloadMap = hsts();
for (const [name, entry] of Object.entries(input.preload ?? {})) {
  preloadMap.set(name, entry);
}

for (const c of input.cases) {
  let r;
  try {
    r = await retrieve(c.host ?? input.host, {
      httpPort: c.httpPort ?? CLOSED,
      httpsPort: c.httpsPort ?? CLOSED,
      path: c.path,
    });
  } catch (e) {
    out[c.id] = { error: `retrieval failed: ${e instanceof Error ? e.message : String(e)}` };
    continue;
  }
  // From here on: the body of the package's scan() (src/scanner/index.js, v1.4.8).
  if (!r.responses.auto) {
    out[c.id] = { error: "The site seems to be down." };
    continue;
  }
  const { status } = r.responses.auto;
  if (status < 200 || (status >= 400 && ![401, 403].includes(status))) {
    out[c.id] = { error: `Site did respond with an unexpected HTTP status code ${status}.` };
    continue;
  }
  const results = ALL_TESTS.map((test) => test(r));
  let scoreWithExtraCredit = 100;
  let uncurvedScore = 100;
  const tests = {};
  for (const result of results) {
    if (result.result) {
      result.scoreModifier = getScoreModifier(result.result);
      scoreWithExtraCredit += result.scoreModifier;
      if (result.scoreModifier < 0) {
        uncurvedScore += result.scoreModifier;
      }
    }
    tests[result.constructor.name] = {
      result: result.result,
      scoreModifier: result.scoreModifier ?? 0,
      pass: result.pass,
    };
  }
  const score =
    uncurvedScore >= MINIMUM_SCORE_FOR_EXTRA_CREDIT ? scoreWithExtraCredit : uncurvedScore;
  const final = getGradeForScore(score);
  out[c.id] = {
    grade: final.grade,
    score: final.score,
    tests,
    algorithmVersion: ALGORITHM_VERSION,
    version,
  };
}
console.log(JSON.stringify(out));
