// The original REST API (/api/v1) as its web frontend called it: fetch,
// JSON bodies, the token as a bearer header (or ?token=, as the original
// read it), and detail as the message to show.
import { test } from "node:test";
import assert from "node:assert/strict";

const url = process.env.OBSQRA_URL ?? "http://127.0.0.1:8000";
const api = `${url}/api/v1`;

async function call(method, path, { body, token, query } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token && !query) headers.Authorization = `Bearer ${token}`;
  const target = new URL(api + path);
  if (token && query) target.searchParams.set("token", token);
  const r = await fetch(target, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), redirect: "manual" });
  const text = await r.text();
  return { status: r.status, headers: r.headers, body: text ? JSON.parse(text) : null };
}

test("the frontend's sign-up, sign-in and the reads it may make", async () => {
  const email = `rest-${Date.now()}-${Math.random().toString(36).slice(2)}@example.com`;
  // AuthContext.tsx sent {email, password} and read access_token and user.
  const reg = await call("POST", "/auth/register", { body: { email, password: "c0rrect-Horse-battery" } });
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  assert.equal(reg.body.token_type, "bearer");
  assert.equal(typeof reg.body.access_token, "string");
  assert.equal(reg.body.user.email, email);
  assert.equal(reg.body.user.wallet_address, null);

  const again = await call("POST", "/auth/register", { body: { email, password: "c0rrect-Horse-battery" } });
  assert.deepEqual([again.status, again.body.detail, again.body.code], [400, "Email already registered", "CONFLICT"]);

  const bad = await call("POST", "/auth/login", { body: { email, password: "wrong-password-1" } });
  assert.deepEqual([bad.status, bad.body.detail], [401, "Invalid credentials"]);
  const login = await call("POST", "/auth/login", { body: { email, password: "c0rrect-Horse-battery" } });
  assert.equal(login.status, 200);
  const token = login.body.access_token;

  for (const query of [false, true]) {
    const me = await call("GET", "/auth/me", { token, query });
    assert.equal(me.status, 200);
    assert.equal(typeof me.body.id, "number");
    assert.deepEqual(Object.keys(me.body).sort(), ["email", "full_name", "id", "is_verified", "wallet_address"]);
  }
  const none = await call("GET", "/auth/me");
  assert.equal(none.status, 422);
  assert.deepEqual(none.body.detail[0].loc, ["query", "token"]);

  const put = await call("PUT", "/users/preferences", { token, body: { risk_tolerance: "low", rebalance_threshold: 2.5 } });
  assert.deepEqual([put.status, put.body.message], [200, "Preferences updated"]);
  const profile = await call("GET", "/users/profile", { token });
  assert.equal(profile.body.preferences.risk_tolerance, "low");
  assert.equal(profile.body.preferences.rebalance_threshold, 2.5);

  const risk = await call("GET", "/analytics/risk-history?days=1", { token });
  assert.equal(risk.status, 200);
  assert.ok(Array.isArray(risk.body) && risk.body.length > 0, "no risk scores from the simulated feed");
  assert.match(risk.body[0].timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?$/);

  const hash = "0x" + Date.now().toString(16).padStart(60, "0");
  const created = await call("POST", "/transactions/", { token, body: { tx_hash: hash, tx_type: "deposit", amount: 250.0, details: { asset: "STRK" } } });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const got = await call("GET", `/transactions/${created.body.tx_hash}`, { token, query: true });
  assert.deepEqual([got.status, got.body.id, got.body.amount, got.body.status], [200, created.body.id, 250, "pending"]);
  const list = await call("GET", "/transactions/?tx_type=deposit&limit=20", { token });
  assert.deepEqual(list.body.map((t) => t.id), [created.body.id]);
  const missing = await call("GET", "/transactions/0x1", { token });
  assert.deepEqual([missing.status, missing.body.detail], [404, "Transaction not found"]);
  const slash = await call("GET", "/transactions?limit=5", { token, query: true });
  assert.equal(slash.status, 307);
  assert.match(slash.headers.get("location"), /^\/api\/v1\/transactions\/\?limit=5&token=/);

  // A fresh server's simulated feed may not have the 30 days a plan needs
  // yet: then a 404 that says so.
  const run = await call("POST", "/predictions/run-optimization", { token });
  if (run.status === 404) {
    assert.match(run.body.detail, /30 days of history/);
  } else {
    assert.equal(run.status, 200, JSON.stringify(run.body));
    assert.equal(run.body.status, "completed");
    const total = Object.values(run.body.allocation).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - 100) < 1e-9, `allocation sums to ${total}`);
  }
});

test("the OpenAPI document and the reference page", async () => {
  const doc = await fetch(`${api}/openapi.json`).then((r) => r.json());
  assert.equal(doc.openapi, "3.1.0");
  assert.ok(doc.paths["/api/v1/transactions/{tx_hash}"].get);
  const page = await fetch(`${api}/docs`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-security-policy"), /default-src 'none'/);
  assert.match(await page.text(), /Obsqra REST API reference/);
});
