// Subscriptions over server-sent events with graphql-sse's own client, in
// its "distinct connections" mode (one request per operation): a live
// risk score, then a second subscription resuming after its cursor.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "graphql-sse";

const url = process.env.OBSQRA_URL ?? "http://127.0.0.1:8000";

const client = () => createClient({ url: `${url}/graphql`, retryAttempts: 0 });

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
