// Cache identity as Apollo Client's real InMemoryCache sees it (issue 18):
// objects are normalized by __typename and id, so two different objects
// must never share an id, and the same object must keep its id across
// operations.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";

const url = process.env.OBSQRA_URL ?? "http://127.0.0.1:8000";

function client(token) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  return new ApolloClient({ link: new HttpLink({ uri: `${url}/graphql`, headers }), cache: new InMemoryCache() });
}

const SAFE = "{utilization: 1000, volatility: 100, liquidity: 0, auditScore: 100, ageDays: 1000}";
const RISKY = "{utilization: 10000, volatility: 10000, liquidity: 3, auditScore: 0, ageDays: 0}";

test("two riskScorePreviews in one response stay apart in the cache", async () => {
  const apollo = client();
  const alone = async (input) => {
    const { data, error } = await apollo.query({ query: gql(`{ riskScorePreview(input: ${input}) { score } }`), fetchPolicy: "no-cache" });
    assert.equal(error, undefined);
    return data.riskScorePreview.score;
  };
  const safe = await alone(SAFE);
  const risky = await alone(RISKY);
  assert.notEqual(safe, risky, "the two inputs must score differently for this test to mean anything");

  const both = gql(`{
    safe: riskScorePreview(input: ${SAFE}) { __typename score components { utilization unclamped } modelVersion }
    risky: riskScorePreview(input: ${RISKY}) { __typename score components { utilization unclamped } modelVersion }
  }`);
  const { data, error } = await apollo.query({ query: both });
  assert.equal(error, undefined);
  assert.equal(data.safe.score, safe);
  assert.equal(data.risky.score, risky);
  // Read back from the cache, not the response: merged objects would read
  // back as the last one written.
  const cached = apollo.readQuery({ query: both });
  assert.equal(cached.safe.score, safe, "the safe preview reads back with the risky one's score");
  assert.equal(cached.risky.score, risky);
  assert.equal(cached.safe.__typename, "RiskScorePreview");
  // A preview has no id, so the cache keeps it inside the query, never as
  // an entity of its own.
  assert.equal(apollo.cache.identify(cached.safe), undefined);
  for (const key of Object.keys(apollo.cache.extract())) {
    assert.doesNotMatch(key, /^RiskScore/, `a preview was normalized as ${key}`);
  }
});

test("a later operation's dashboard updates the cached dashboard query", async () => {
  const anon = client();
  const email = `identity-${Date.now()}-${Math.floor(Math.random() * 1e9)}@example.com`;
  const { data: reg, error: regErr } = await anon.mutate({
    mutation: gql`mutation($in: RegisterInput!) { register(input: $in) { auth { accessToken user { id } } } }`,
    variables: { in: { email, password: "correct horse", fullName: "Ada Identity" } },
  });
  assert.equal(regErr, undefined);
  const apollo = client(reg.register.auth.accessToken);

  const dashboard = gql`{ dashboard { id windowDays latestAllocation { id } } }`;
  const first = await apollo.query({ query: dashboard });
  assert.equal(first.error, undefined);
  assert.equal(first.data.dashboard.latestAllocation, null);
  const id = first.data.dashboard.id;
  assert.equal(apollo.cache.identify(first.data.dashboard), `Dashboard:${id}`);
  // Another window is another object.
  const month = await apollo.query({ query: gql`{ dashboard(windowDays: 30) { id } }` });
  assert.notEqual(month.data.dashboard.id, id);

  const { data: ps } = await apollo.query({ query: gql`{ protocols { slug enabled } }` });
  const slug = ps.protocols.find((p) => p.enabled)?.slug;
  assert.ok(slug, "no enabled protocol");
  const { data: rec, error: recErr } = await apollo.mutate({
    mutation: gql`mutation($in: RecordAllocationInput!) { recordAllocation(input: $in) { id } }`,
    variables: { in: { weights: [{ protocol: slug, weightBps: 10000 }] } },
  });
  assert.equal(recErr, undefined);

  // The dashboard again, reached by another path (node), not by the
  // dashboard query: only normalization by id can carry it there.
  const again = await apollo.query({
    query: gql`query($id: ID!) { node(id: $id) { id ... on Dashboard { windowDays latestAllocation { id } } } }`,
    variables: { id },
    fetchPolicy: "network-only",
  });
  assert.equal(again.error, undefined);
  assert.equal(again.data.node.id, id);
  assert.equal(again.data.node.latestAllocation?.id, rec.recordAllocation.id);

  const cached = apollo.readQuery({ query: dashboard });
  assert.equal(cached.dashboard.latestAllocation?.id, rec.recordAllocation.id, "the cached dashboard query was not updated");
});
