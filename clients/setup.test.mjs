// The README's Apollo Client setup (apollo.mjs) against the server:
// batching and persisted queries together, and a refresh of the session
// when the access token is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { gql } from "@apollo/client";
import { makeClient } from "./apollo.mjs";

const uri = `${process.env.OBSQRA_URL ?? "http://127.0.0.1:8000"}/graphql`;

async function register() {
  const email = `setup-${Date.now()}-${Math.random().toString(16).slice(2)}@example.com`;
  const r = await fetch(uri, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      query: `mutation($in: RegisterInput!) { register(input: $in) { auth { accessToken refreshToken } } }`,
      variables: { in: { email, password: "correct horse battery", fullName: "Setup" } },
    }),
  });
  const { data, errors } = await r.json();
  assert.equal(errors, undefined, JSON.stringify(errors));
  return { email, session: { ...data.register.auth } };
}

// recording wraps fetch and keeps every request body it sends to uri.
function recording() {
  const bodies = [];
  const fetchImpl = (url, init) => {
    if (String(url) === uri && init?.body) bodies.push(JSON.parse(init.body));
    return fetch(url, init);
  };
  return { bodies, fetchImpl };
}

test("two queries go in one batched POST, by hash once registered", async () => {
  const { session } = await register();
  const { bodies, fetchImpl } = recording();
  const client = makeClient({ uri, session, fetchImpl });
  const me = gql`query Me { me { email } }`;
  const protocols = gql`query Protocols { protocols { id slug } }`;
  const run = () =>
    Promise.all([
      client.query({ query: me, fetchPolicy: "network-only" }),
      client.query({ query: protocols, fetchPolicy: "network-only" }),
    ]);
  let [a, b] = await run();
  assert.ok(a.data.me.email.startsWith("setup-"));
  assert.ok(b.data.protocols.length > 0);
  [a, b] = await run();
  assert.ok(a.data.me && b.data.protocols.length > 0);
  const last = bodies.at(-1);
  assert.ok(Array.isArray(last) && last.length === 2, `last request: ${JSON.stringify(last)}`);
  for (const op of last) {
    assert.equal(op.query, undefined, "a registered query is sent by its hash alone");
    assert.match(op.extensions.persistedQuery.sha256Hash, /^[0-9a-f]{64}$/);
  }
});

test("a refused access token is refreshed once and the operation runs again", async () => {
  const { email, session } = await register();
  const { bodies, fetchImpl } = recording();
  const client = makeClient({ uri, session, fetchImpl });
  const oldRefresh = session.refreshToken;
  session.accessToken = "not-a-token";
  const { data } = await client.query({ query: gql`query MeAgain { me { email } }`, fetchPolicy: "network-only" });
  assert.equal(data.me.email, email);
  assert.notEqual(session.refreshToken, oldRefresh, "the session was refreshed");
  assert.notEqual(session.accessToken, "not-a-token");
  const refreshes = bodies.filter((b) => !Array.isArray(b) && b.query?.includes("refreshSession"));
  assert.equal(refreshes.length, 1);
});
