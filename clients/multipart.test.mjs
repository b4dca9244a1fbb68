// Subscriptions over HTTP with Apollo Client's plain HttpLink, no
// WebSocket: Apollo's multipart subscriptions (Accept:
// multipart/mixed;subscriptionSpec=1.0). Live risk scores, the end of the
// request when the client unsubscribes, a signed-in user's own events,
// refused tokens, and a resume after a dropped connection with no event
// lost or repeated.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ApolloClient, CombinedGraphQLErrors, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { makeClient } from "./apollo.mjs";
import { startRelay } from "./relay.mjs";

const url = process.env.OBSQRA_URL ?? "http://127.0.0.1:8000";

// client is an Apollo Client of the server at base with a plain HttpLink,
// sending token (if any) in the Authorization header.
function client({ base = url, token, fetchImpl } = {}) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  return new ApolloClient({
    link: new HttpLink({ uri: `${base}/graphql`, headers, fetch: fetchImpl }),
    cache: new InMemoryCache(),
  });
}

const riskScores = gql`
  subscription RiskScores($after: String) {
    riskScoreUpdated(after: $after) { cursor riskScore { id score } }
  }
`;

// watch subscribes through apollo and records what arrives: the data of
// each result, the errors (a result's or the observable's), and whether
// the observable completed; stamp(), when given, is called as each result
// arrives and its value kept in stamps. stop() unsubscribes.
function watch(apollo, query, variables, stamp = () => undefined) {
  const w = { data: [], stamps: [], errors: [], completed: false };
  const subscription = apollo.subscribe({ query, variables, fetchPolicy: "no-cache" }).subscribe({
    next: ({ data, error }) => {
      if (error) return w.errors.push(error);
      w.data.push(data);
      w.stamps.push(stamp());
    },
    error: (error) => w.errors.push(error),
    complete: () => (w.completed = true),
  });
  w.stop = () => subscription.unsubscribe();
  return w;
}

// rawBody is a fetch whose multipart responses are also read beside the
// client, as they arrive: raw.text is what has arrived, raw.ends the
// length of raw.text after each chunk. Its reader is the first branch of
// the body's tee, so each chunk reaches it before it reaches the client.
function rawBody() {
  const raw = { text: "", ends: [] };
  const fetchImpl = async (uri, init) => {
    const res = await fetch(uri, init);
    if (!res.headers.get("content-type")?.startsWith("multipart/mixed")) return res;
    const [beside, client] = res.body.tee();
    (async () => {
      const reader = beside.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        raw.text += decoder.decode(value, { stream: true });
        raw.ends.push(raw.text.length);
      }
    })().catch(() => {}); // the client's abort ends both branches
    return new Response(client, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
  return { raw, fetchImpl };
}

// until waits for check() to hold, failing with what after ms.
async function until(check, what, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// register signs a new user up and returns their access token.
async function register(name) {
  const email = `${name}-${Date.now()}-${Math.random().toString(16).slice(2)}@example.com`;
  const res = await fetch(`${url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      query: `mutation($in: RegisterInput!) { register(input: $in) { auth { accessToken refreshToken } } }`,
      variables: { in: { email, password: "correct horse battery", fullName: name } },
    }),
  });
  const { data, errors } = await res.json();
  assert.equal(errors, undefined, JSON.stringify(errors));
  return data.register.auth;
}

// cursors lists the cursors of a watch's risk scores.
const cursors = (w) => w.data.map((d) => d.riskScoreUpdated.cursor);

test("HttpLink alone receives live risk scores as a multipart stream", { timeout: 60_000 }, async () => {
  const seen = [];
  const fetchImpl = async (uri, init) => {
    const res = await fetch(uri, init);
    seen.push({ accept: init.headers.accept, type: res.headers.get("content-type") });
    return res;
  };
  const w = watch(client({ fetchImpl }), riskScores);
  try {
    await until(() => w.data.length >= 3 || w.errors.length, "three risk scores");
    assert.deepEqual(w.errors, []);
    for (const { riskScoreUpdated: e } of w.data) {
      assert.equal(typeof e.cursor, "string");
      assert.equal(typeof e.riskScore.score, "number");
    }
    assert.equal(new Set(cursors(w)).size, w.data.length, "a cursor came twice");
    assert.equal(seen.length, 1);
    assert.match(seen[0].accept, /^multipart\/mixed;boundary=graphql;subscriptionSpec=1\.0,/);
    assert.equal(seen[0].type, 'multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"');
  } finally {
    w.stop();
  }
});

test("unsubscribing aborts the request, and the server ends it", { timeout: 60_000 }, async () => {
  const relay = await startRelay(url);
  const signals = [];
  const fetchImpl = (uri, init) => {
    signals.push(init.signal);
    return fetch(uri, init);
  };
  try {
    const w = watch(client({ base: relay.url, fetchImpl }), riskScores);
    await until(() => w.data.length >= 1 || w.errors.length, "a risk score");
    assert.equal(relay.connections.length, 1);
    w.stop();
    assert.ok(signals[0].aborted, "the request was not aborted");
    // The server sees the client go away and ends the response (the relay
    // sees the server end the connection): the subscription stops there.
    let ended = false;
    relay.connections[0].serverEnded.then(() => (ended = true));
    await until(() => ended, "the server to end the request", 10_000);
    assert.deepEqual(w.errors, [], "unsubscribing is no error");
    assert.equal(w.completed, false, "the stream was not completed by the server");
  } finally {
    await relay.close();
  }
});

test("a signed-in user's own allocations, with their Authorization header, and no one else's", { timeout: 60_000 }, async () => {
  const ada = await register("ada");
  const bob = await register("bob");
  const { raw, fetchImpl } = rawBody();
  const adaClient = client({ token: ada.accessToken, fetchImpl });
  const bobClient = client({ token: bob.accessToken });
  const { data: ps } = await adaClient.query({ query: gql`{ protocols { slug enabled } }` });
  const slug = ps.protocols.find((p) => p.enabled)?.slug;
  assert.ok(slug, "no enabled protocol");

  // From a cursor taken now, so that the test does not race the
  // subscription's start: what is recorded after it is replayed, then live.
  const before = watch(client(), riskScores);
  await until(() => before.data.length >= 1 || before.errors.length, "a cursor");
  before.stop();
  assert.deepEqual(before.errors, []);
  const after = before.data[0].riskScoreUpdated.cursor;

  const allocations = gql`
    subscription Mine($after: String) {
      allocationRecorded(after: $after) { cursor allocation { id weights { weightBps protocol { slug } } } }
    }
  `;
  const w = watch(adaClient, allocations, { after }, () => raw.ends.length);
  try {
    const record = gql`mutation($in: RecordAllocationInput!) { recordAllocation(input: $in) { id } }`;
    const input = { in: { weights: [{ protocol: slug, weightBps: 10000 }] } };
    const bobs = await bobClient.mutate({ mutation: record, variables: input });
    assert.equal(bobs.error, undefined);
    const adas = await adaClient.mutate({ mutation: record, variables: input });
    assert.equal(adas.error, undefined);
    await until(() => w.data.length >= 1 || w.errors.length, "ada's allocation");
    assert.deepEqual(w.errors, []);
    assert.equal(w.data.length, 1, `events: ${JSON.stringify(w.data)}`);
    const e = w.data[0].allocationRecorded;
    assert.equal(e.allocation.id, adas.data.recordAllocation.id);
    assert.notEqual(e.allocation.id, bobs.data.recordAllocation.id);
    assert.deepEqual(e.allocation.weights, [{ __typename: "Weight", weightBps: 10000, protocol: { __typename: "Protocol", slug } }]);
    // The event reached Apollo Client with the chunk that carried it, not
    // with a later one (the next event, or a heartbeat 12 s on): its part
    // was whole as written.
    const at = raw.text.indexOf(e.allocation.id);
    assert.ok(at >= 0, "the allocation is not in the body");
    const carried = raw.ends.findIndex((end) => end > at) + 1;
    assert.equal(w.stamps[0], carried, `delivered after chunk ${w.stamps[0]}, carried by chunk ${carried}: ${JSON.stringify(raw.text)}`);
  } finally {
    w.stop();
  }
});

test("an invalid or revoked access token gets UNAUTHENTICATED and no event", { timeout: 60_000 }, async () => {
  const revoked = await register("revoked");
  const logout = await fetch(`${url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${revoked.accessToken}` },
    body: JSON.stringify({ query: "mutation { logout }" }),
  });
  assert.deepEqual((await logout.json()).data, { logout: true });

  for (const token of ["not-a-token", revoked.accessToken]) {
    // riskScoreUpdated needs no sign-in: a refused token still does not
    // subscribe anonymously.
    const w = watch(client({ token }), riskScores);
    try {
      await until(() => w.completed, "the end of the refused stream");
      assert.equal(w.data.length, 0, "events arrived");
      assert.equal(w.errors.length, 1, `errors: ${w.errors}`);
      assert.ok(CombinedGraphQLErrors.is(w.errors[0]), `${w.errors[0]}`);
      assert.equal(w.errors[0].errors[0].extensions.code, "UNAUTHENTICATED");
    } finally {
      w.stop();
    }
  }
});

test("the README's client: subscriptions over HttpLink beside a batch, refreshing a refused token", { timeout: 60_000 }, async () => {
  const session = await register("readme");
  const apollo = makeClient({ uri: `${url}/graphql`, session });
  const oldRefresh = session.refreshToken;
  session.accessToken = "not-a-token"; // refused: refreshed, then subscribed again
  const w = watch(apollo, gql`subscription MyAllocations { allocationRecorded { cursor } }`);
  try {
    await until(() => session.refreshToken !== oldRefresh || w.errors.length || w.completed, "the refresh");
    assert.notEqual(session.accessToken, "not-a-token", "the session was not refreshed");
    const { data: ps } = await apollo.query({ query: gql`query Slugs { protocols { slug enabled } }` });
    const slug = ps.protocols.find((p) => p.enabled).slug;
    // The subscription starts after the refresh; without a cursor the
    // test cannot know when, so it records until one arrives.
    const record = gql`mutation Record($in: RecordAllocationInput!) { recordAllocation(input: $in) { id } }`;
    for (let i = 0; i < 20 && w.data.length === 0 && !w.errors.length; i++) {
      await apollo.mutate({ mutation: record, variables: { in: { weights: [{ protocol: slug, weightBps: 10000 }] } } });
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.deepEqual(w.errors, []);
    assert.ok(w.data.length >= 1, "no allocation arrived");
    assert.equal(w.completed, false);
  } finally {
    w.stop();
  }
});

test("a subscription POSTed as plain JSON is refused with SUBSCRIPTION_NEEDS_STREAM", async () => {
  const res = await fetch(`${url}/graphql`, {
    method: "POST",
    // What Apollo Client accepts for a query: no stream.
    headers: { "content-type": "application/json", accept: "application/graphql-response+json,application/json;q=0.9" },
    body: JSON.stringify({ query: "subscription { riskScoreUpdated { cursor } }" }),
  });
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.errors[0].extensions.code, "SUBSCRIPTION_NEEDS_STREAM");
  assert.equal(body.data, undefined);
});

test("a dropped connection resumes after its last cursor: no event lost, none repeated", { timeout: 90_000 }, async () => {
  // The reference stays connected from before the first cursor to the end.
  const reference = watch(client(), riskScores);
  const relay = await startRelay(url);
  let dropped;
  let resumed;
  try {
    await until(() => reference.data.length >= 1, "the reference's first risk score");
    const start = cursors(reference)[0];

    dropped = watch(client({ base: relay.url }), riskScores, { after: start });
    await until(() => dropped.data.length >= 3 || dropped.errors.length, "three risk scores before the drop");
    relay.dropAll(); // the network cuts the connection: no close delimiter
    await until(() => dropped.completed, "the dropped stream's end");
    assert.ok(dropped.errors.length >= 1, "a dropped connection must be reported, not completed cleanly");
    const got = cursors(dropped);
    const last = got.at(-1);

    // Events go on while the client is away.
    const atDrop = reference.data.length;
    await until(() => reference.data.length >= atDrop + 3, "events while disconnected");
    await new Promise((resolve) => setTimeout(resolve, 500));

    resumed = watch(client(), riskScores, { after: last });
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
    await relay.close();
  }
});
