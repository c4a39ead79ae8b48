// node-q against `qpeach serve`: connect with a password, echo JS values
// through .qp.echo, set a global with .qp.set and evaluate it by name.
// usage: node nodeq_echo.js PORT USER PASSWORD ; prints "ok" and exits 0,
// or prints what differed and exits 1.
const nodeq = require("node-q");
const assert = require("assert");

const [port, user, password] = process.argv.slice(2);
const values = [
  42, -1.5, 0, true, false, "hello", "",
  [1, 2, 3], [1.5, -2.25], ["a", "bc"], [1, "x", true],
  { a: 1, b: "two", c: [3, 4] }, { nested: { x: 1 } },
  nodeq.int(8), nodeq.short(-9), nodeq.symbol("sym"), nodeq.ints([1, 2]),
  nodeq.symbols(["x", "y"]), nodeq.floats([0.25]),
];
// "`abc" is node-q's way to send a symbol; it comes back as "abc"
const renamed = [["`abc", "abc"]];

function k(con, ...args) {
  return new Promise((ok, fail) => con.k(...args, (err, res) => (err ? fail(err) : ok(res))));
}

// typed wrappers come back as the plain JS values they wrap
function plain(v) {
  return v && typeof v === "object" && typeof v.type === "function" && typeof v.value === "function"
    ? v.value() : v;
}

nodeq.connect({ host: "127.0.0.1", port: +port, user, password }, async (err, con) => {
  if (err) { console.log("connect failed: " + err); process.exit(1); }
  try {
    for (const v of values) {
      const got = await k(con, ".qp.echo", v);
      assert.deepStrictEqual(got, plain(v), "echo of " + String(v));
    }
    for (const [v, want] of renamed) assert.deepStrictEqual(await k(con, ".qp.echo", v), want);
    // a char-vector expression, as node-q sends for con.k("...")
    assert.deepStrictEqual(await k(con, ".qp.echo 1 2 3"), [1, 2, 3]);
    await k(con, ".qp.set", nodeq.symbol("g"), { px: [1.5, 2.5], n: 2 });
    assert.deepStrictEqual(await k(con, "g"), { px: [1.5, 2.5], n: 2 });
    let qerr = null;
    try { await k(con, "1+1"); } catch (e) { qerr = e; }
    assert(qerr && /unsupported expression/.test(String(qerr.message || qerr)), "q error: " + qerr);
    con.close(() => { console.log("ok"); process.exit(0); });
  } catch (e) {
    console.log("FAILED: " + (e && e.message ? e.message : e));
    process.exit(1);
  }
});
