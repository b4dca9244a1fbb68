// Subscriptions over server-sent events with graphql-sse's own client, in
// its "distinct connections" mode (one request per operation): a live
// risk score, then a second subscription resuming after its cursor, and a
// resume after a dropped connection.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "graphql-sse";
import { startRelay } from "./relay.mjs";

const url = process.env.OBSQRA_URL ?? "http://127.0.0.1:8000";

const client = (base = url) => createClient({ url: `${base}/graphql`, singleConnection: false, retryAttempts: 0 });

const riskScores = `subscription($after: String) {
  riskScoreUpdated(after: $after) { cursor riskScore { id score } }
}`;

// take returns the first n results of operation, then ends it.
async function take(sse, operation, n) {
  const results = [];
  const signal = AbortSignal.timeout(30_000);
  for await (const result of sse.iterate(operation)) {
    assert.equal(result.errors, undefined, JSON.stringify(result.errors));
    results.push(result.data);
    if (results.length === n || signal.aborted) {
      break; // ends the subscription: the client aborts its request
    }
  }
  assert.equal(results.length, n, "the stream ended early");
  return results;
}

test("graphql-sse answers a query with one result", async () => {
  const sse = client();
  try {
    const [data] = await take(sse, { query: "{ __typename }" }, 1);
    assert.deepEqual(data, { __typename: "Query" });
  } finally {
    sse.dispose();
  }
});

test("graphql-sse receives live risk scores and resumes after a cursor", { timeout: 60_000 }, async () => {
  const sse = client();
  try {
    const [first, second] = await take(sse, { query: riskScores }, 2);
    assert.ok(first.riskScoreUpdated.cursor, "no cursor");
    assert.equal(typeof first.riskScoreUpdated.riskScore.score, "number");
    assert.notEqual(second.riskScoreUpdated.cursor, first.riskScoreUpdated.cursor);

    // Resumed after the first event: the next one, not the same.
    const [resumed] = await take(sse, { query: riskScores, variables: { after: first.riskScoreUpdated.cursor } }, 1);
    assert.equal(resumed.riskScoreUpdated.cursor, second.riskScoreUpdated.cursor);
    assert.equal(resumed.riskScoreUpdated.riskScore.id, second.riskScoreUpdated.riskScore.id);
  } finally {
    sse.dispose();
  }
});

test("a subscription over plain JSON is refused at once", async () => {
  const res = await fetch(`${url}/graphql`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/graphql-response+json" },
    body: JSON.stringify({ query: riskScores }),
  });
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.errors[0].extensions.code, "SUBSCRIPTION_NEEDS_STREAM");
});

// watch subscribes to operation and records what arrives: the data of
// each result, the errors (a result's or the sink's), and whether the
// stream completed. stop() ends the subscription.
function watch(sse, operation) {
  const w = { data: [], errors: [], completed: false };
  w.stop = sse.subscribe(operation, {
    next: (result) => (result.errors ? w.errors.push(result.errors) : w.data.push(result.data)),
    error: (error) => w.errors.push(error),
    complete: () => (w.completed = true),
  });
  return w;
}

// until waits for check() to hold, failing with what after ms.
async function until(check, what, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// cursors lists the cursors of a watch's risk scores.
const cursors = (w) => w.data.map((d) => d.riskScoreUpdated.cursor);

test("graphql-sse resumes a dropped connection after its last cursor: no event lost, none repeated", { timeout: 90_000 }, async () => {
  const sse = client();
  const relay = await startRelay(url);
  const throughRelay = client(relay.url);
  // The reference stays connected from before the first cursor to the end.
  const reference = watch(sse, { query: riskScores });
  let dropped;
  let resumed;
  try {
    await until(() => reference.data.length >= 1 || reference.errors.length, "the reference's first risk score");
    assert.deepEqual(reference.errors, []);
    const start = cursors(reference)[0];

    dropped = watch(throughRelay, { query: riskScores, variables: { after: start } });
    await until(() => dropped.data.length >= 3 || dropped.errors.length, "three risk scores before the drop");
    relay.dropAll(); // the network cuts the connection: no event complete
    await until(() => dropped.errors.length || dropped.completed, "the dropped stream's end");
    assert.equal(dropped.completed, false, "a dropped connection must be reported, not completed");
    const got = cursors(dropped);

    // Events go on while the client is away.
    const atDrop = reference.data.length;
    await until(() => reference.data.length >= atDrop + 3, "events while disconnected");
    await new Promise((resolve) => setTimeout(resolve, 500));

    resumed = watch(sse, { query: riskScores, variables: { after: got.at(-1) } });
    const atResume = reference.data.length;
    await until(() => reference.data.length >= atResume + 3, "live events after the resume");
    const target = cursors(reference)[atResume + 2];
    await until(() => cursors(resumed).includes(target) || resumed.errors.length, "the resumed stream to catch up");
    assert.deepEqual(resumed.errors, []);
    assert.deepEqual(reference.errors, []);

    const whole = [...dropped.data, ...resumed.data].map((d) => d.riskScoreUpdated);
    const upTo = whole.findIndex((e) => e.cursor === target);
    const all = reference.data.map((d) => d.riskScoreUpdated);
    const want = all.slice(1, all.findIndex((e) => e.cursor === target) + 1);
    assert.ok(want.length > got.length + 3, "too few events for the test to mean anything");
    assert.deepEqual(whole.slice(0, upTo + 1), want, "the dropped and resumed streams together are not the reference's events");
  } finally {
    reference.stop();
    dropped?.stop();
    resumed?.stop();
    sse.dispose();
    throughRelay.dispose();
    await relay.close();
  }
});
