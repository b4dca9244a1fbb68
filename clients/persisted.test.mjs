// Apollo's persisted-query link against the server: the first query falls
// back to the full document and registers it, the second goes by hash
// alone, and a GET by hash is cacheable by a CDN.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";

const url = process.env.OBSQRA_URL ?? "http://127.0.0.1:8000";
const sha256 = (s) => createHash("sha256").update(s).digest("hex");

// recordingFetch records each request's method, body and URL and each
// response's Cache-Control.
function recordingFetch() {
  const calls = [];
  const fetchFn = async (uri, options) => {
    const res = await fetch(uri, options);
    calls.push({
      method: options.method ?? "POST",
      url: String(uri),
      body: options.body ? JSON.parse(options.body) : undefined,
      cacheControl: res.headers.get("cache-control"),
    });
    return res;
  };
  return { calls, fetchFn };
}

function client(fetchFn, useGETForHashedQueries) {
  const link = new PersistedQueryLink({ sha256, useGETForHashedQueries }).concat(
    new HttpLink({ uri: `${url}/graphql`, fetch: fetchFn }),
  );
  return new ApolloClient({ link, cache: new InMemoryCache() });
}

test("the persisted-query link registers a query, then sends its hash alone", async () => {
  const { calls, fetchFn } = recordingFetch();
  const c = client(fetchFn, false);
  // A query of its own, so that no other test registered it first.
  const query = gql`query PersistedProtocols { protocols { id slug name } }`;
  const first = await c.query({ query, fetchPolicy: "network-only" });
  assert.equal(first.error, undefined);
  assert.ok(first.data.protocols.length > 0);
  assert.equal(calls.length, 2, "the first query: hash only, then hash and document");
  assert.equal(calls[0].body.query, undefined);
  assert.equal(calls[0].body.extensions.persistedQuery.version, 1);
  assert.match(calls[0].body.extensions.persistedQuery.sha256Hash, /^[0-9a-f]{64}$/);
  assert.ok(calls[1].body.query.includes("PersistedProtocols"));

  const second = await c.query({ query, fetchPolicy: "network-only" });
  assert.equal(second.error, undefined);
  assert.deepEqual(second.data, first.data);
  assert.equal(calls.length, 3, "the second query: one request");
  assert.equal(calls[2].body.query, undefined, "the second query goes by hash alone");
  assert.equal(calls[2].cacheControl, "no-store");
});

test("GET by hash works and is cacheable by a CDN", async () => {
  const { calls, fetchFn } = recordingFetch();
  const c = client(fetchFn, true);
  const query = gql`query PersistedGET { protocols { id slug } }`;
  const first = await c.query({ query, fetchPolicy: "network-only" });
  assert.equal(first.error, undefined);
  const second = await c.query({ query, fetchPolicy: "network-only" });
  assert.equal(second.error, undefined);
  assert.deepEqual(second.data, first.data);
  const last = calls.at(-1);
  assert.equal(last.method, "GET");
  assert.ok(!new URL(last.url).searchParams.has("query"), "the GET carries no document");
  assert.ok(new URL(last.url).searchParams.has("extensions"));
  assert.match(last.cacheControl ?? "", /^public, max-age=\d+$/);
});
