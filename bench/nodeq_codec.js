// bench/nodeq_codec.js - node-q's codec (npm node-q, lib/c.js) on the values
// bench/bench_codec.c encodes, so the harness can compare the two codecs in
// one run. Same formulas as bench_codec.c:
//   float vector  x[i] = i * 0.25            (N items)
//   long vector   x[i] = i * 7               (N items, node-q typed longs)
//   symbol vector "sym%04d" of i % 1000      (S items)
//   table         10 rows: sym MSFT/IBM, price 100+i, size 10*i
//                 (node-q cannot serialize tables: decode only, of the bytes
//                 the harness passes in a file made by qpeach's codec)
// Prints, per value and operation, one machine line
//   CSV,nodeq,<value>,<op>,<seconds>,<bytes>,<memcpy seconds>,<sha256 of the message body>
// where memcpy is Buffer.copy of the same bytes, best of 3 rounds each.
// The body hash lets the harness check that node-q produced exactly the bytes
// qpeach's encoder does (the same -8! body).
//
// usage: node bench/nodeq_codec.js N S [TABLE_MSG_FILE]
"use strict";
const path = require("path");
const fs = require("fs");
const crypto = require("crypto");
const nodeq = require(path.join(__dirname, "node_modules", "node-q"));
const c = require(path.join(__dirname, "node_modules", "node-q", "lib", "c.js"));
const Long = require(path.join(__dirname, "node_modules", "long"));

const N = parseInt(process.argv[2] || "1000000", 10);
const S = parseInt(process.argv[3] || "100000", 10);
const tableFile = process.argv[4];

function now() { return Number(process.hrtime.bigint()) / 1e9; }
function best(fn) {
  let t = 1e30, r;
  for (let i = 0; i < 3; i++) {
    const t0 = now();
    r = fn();
    t = Math.min(t, now() - t0);
  }
  return [t, r];
}
function memcpyTime(buf) {
  const dst = Buffer.alloc(buf.length);
  return best(() => buf.copy(dst))[0];
}
function body(buf) {
  return crypto.createHash("sha256").update(buf.subarray(8)).digest("hex");
}
function out(value, op, t, bytes, tm, hash) {
  console.log(["CSV", "nodeq", value, op, t.toFixed(9), bytes, tm.toFixed(9), hash || ""].join(","));
}
function bench(name, x, count) {
  const [te, msg] = best(() => c.serialize(x));
  const tm = memcpyTime(msg);
  out(name, "encode", te, msg.length, tm, body(msg));
  const [td, back] = best(() => c.deserialize(msg));
  const n = Array.isArray(back) ? back.length : -1;
  if (n !== count) throw new Error(name + ": decoded " + n + " items, expected " + count);
  out(name, "decode", td, msg.length, tm, body(msg));
}

const f = new Array(N);
for (let i = 0; i < N; i++) f[i] = i * 0.25;
bench("float", nodeq.floats(f), N);

const l = new Array(N);
for (let i = 0; i < N; i++) l[i] = Long.fromNumber(i * 7);
bench("long", nodeq.longs(l), N);

const s = new Array(S);
for (let i = 0; i < S; i++) s[i] = "sym" + String(i % 1000).padStart(4, "0");
bench("symbol", nodeq.symbols(s), S);

if (tableFile) {
  const msg = fs.readFileSync(tableFile);
  const reps = 10000;
  const tm = best(() => { const d = Buffer.alloc(msg.length); for (let i = 0; i < reps; i++) msg.copy(d); })[0];
  const [td, back] = best(() => { let r; for (let i = 0; i < reps; i++) r = c.deserialize(msg); return r; });
  if (!Array.isArray(back) || back.length !== 10 || back[3].sym !== "IBM" || back[3].price !== 103)
    throw new Error("table: node-q decoded " + JSON.stringify(back).slice(0, 200));
  out("table", "decode", td, msg.length * reps, tm, body(msg));
}
