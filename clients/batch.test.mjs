// Apollo's BatchHttpLink: two queries sent together in one POST, each
// answered in order with its own data and errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ApolloClient, InMemoryCache, gql } from "@apollo/client";
import { BatchHttpLink } from "@apollo/client/link/batch-http";

const url = process.env.OBSQRA_URL ?? "http://127.0.0.1:8000";

test("BatchHttpLink batches two queries, each with its own data and errors", async () => {
  const posts = [];
  const link = new BatchHttpLink({
    uri: `${url}/graphql`,
    batchMax: 10,
    batchInterval: 20,
    fetch: async (input, init) => {
      posts.push(JSON.parse(init.body));
      return fetch(input, init);
    },
  });
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  const [protocols, node] = await Promise.all([
    client.query({ query: gql`query Protocols { protocols { id slug } }` }),
    client.query({ query: gql`query Missing { node(id: "no-such-node") { id } }`, errorPolicy: "all" }),
  ]);

  assert.equal(posts.length, 1, "one POST");
  assert.ok(Array.isArray(posts[0]) && posts[0].length === 2, "a batch of two");
  assert.deepEqual(posts[0].map((op) => op.operationName), ["Protocols", "Missing"]);

  assert.equal(protocols.error, undefined);
  assert.ok(protocols.data.protocols.length > 0, "no protocols");

  assert.equal(node.data?.node ?? null, null);
  assert.ok(node.error, "the second query's own error");
  const errors = node.error.errors ?? [];
  assert.equal(errors.length, 1, `errors: ${JSON.stringify(node.error)}`);
  assert.match(errors[0].extensions.code, /^(NOT_FOUND|BAD_USER_INPUT)$/);
});

test("a batch over BATCH_MAX is one coded error", async () => {
  const ops = Array.from({ length: 11 }, (_, i) => ({ query: `{ a${i}: __typename }` }));
  const res = await fetch(`${url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(ops),
  });
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.errors[0].extensions.code, "BATCH_TOO_LARGE");
});
