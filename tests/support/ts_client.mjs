// Drives clients/typescript for tests/integration/test_ts_client.py: {target, options, calls:
// [{method, args}]} as JSON on stdin; one {ok} or {error: {code, details}} per call, with its
// milliseconds, on stdout.
// options are the client's, with tlsCa (a PEM file) standing for TLS credentials.
import { readFileSync } from "node:fs";

import { EncoderClient, grpc } from "../../clients/typescript/dist/index.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { target, options = {}, calls } = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const { tlsCa, ...clientOptions } = options;
if (tlsCa) clientOptions.credentials = grpc.credentials.createSsl(readFileSync(tlsCa));

const plain = (encoded) =>
  encoded.map((e) => ({
    ...e,
    vector: Array.from(e.vector),
    tokenVectors: e.tokenVectors && e.tokenVectors.map((row) => Array.from(row)),
  }));

const client = new EncoderClient(target, clientOptions);
const results = [];
for (const { method, args = [] } of calls) {
  const t0 = performance.now();
  try {
    const value = await client[method](...args);
    results.push({ ok: method === "encode" ? plain(value) : value, ms: performance.now() - t0 });
  } catch (err) {
    const code = grpc.status[err.code] ?? String(err);
    results.push({ error: { code, details: err.details }, ms: performance.now() - t0 });
  }
}
client.close();
process.stdout.write(JSON.stringify(results));
