// @defer with Apollo Client 4: its Defer20220824Handler over an HttpLink
// receives the deferred fields after the rest of the result, as parts of a
// multipart/mixed response, and keeps the merged result in its cache; the
// README's setup (apollo.mjs) does the same through its persisted queries.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { Defer20220824Handler } from "@apollo/client/incremental";
import { tap } from "rxjs";
import { makeClient } from "./apollo.mjs";

const uri = `${process.env.OBSQRA_URL ?? "http://127.0.0.1:8000"}/graphql`;

// risks is a query that defers each protocol's score, named name (a new
// name is a new document, which persisted queries do not know yet).
const risks = (name) => gql(`
  query ${name} {
    protocols {
      id
      slug
      ... @defer(label: "risk") {
        latestRisk { id score }
      }
    }
  }
`);

const riskOf = gql`fragment RiskOf on Protocol { latestRisk { id score } }`;

// scored waits until every protocol has a risk score (the simulated feed
// scores them at start), so that a deferred latestRisk is never null.
async function scored() {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await fetch(uri, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: "{ protocols { latestRisk { score } } }" }),
    });
    const { data } = await r.json();
    if (data?.protocols?.length > 0 && data.protocols.every((p) => p.latestRisk !== null)) return;
    assert.ok(Date.now() < deadline, "the protocols have no risk scores after 30 s");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

// recording wraps fetch and keeps the Content-Type of every answer from uri.
function recording() {
  const contentTypes = [];
  const fetchImpl = async (url, init) => {
    const r = await fetch(url, init);
    if (String(url) === uri) contentTypes.push(r.headers.get("content-type"));
    return r;
  };
  return { contentTypes, fetchImpl };
}

// watch runs query and returns every result it emits up to the complete one.
function watch(client, query) {
  return new Promise((resolve, reject) => {
    const results = [];
    const sub = client.watchQuery({ query, fetchPolicy: "network-only" }).subscribe({
      next(result) {
        results.push(result);
        if (result.dataState === "complete") {
          sub.unsubscribe();
          resolve(results);
        }
      },
      error: reject,
    });
  });
}

// checkDeferred checks the last of results, those of query (a risks):
// every protocol with its deferred score, and the scores in client's cache.
function checkDeferred(client, query, results) {
  const done = results.at(-1);
  assert.equal(done.dataState, "complete");
  assert.equal(done.error, undefined, JSON.stringify(done.error));
  for (const p of done.data.protocols) {
    assert.equal(typeof p.latestRisk?.score, "number", `${p.slug}'s deferred latestRisk: ${JSON.stringify(p.latestRisk)}`);
  }

  const cached = client.cache.readQuery({ query });
  assert.deepEqual(cached, done.data, "the cache holds the merged result");
  for (const p of done.data.protocols) {
    const fragment = client.cache.readFragment({ id: client.cache.identify(p), fragment: riskOf });
    assert.deepEqual(fragment.latestRisk, p.latestRisk, `${p.slug}'s latestRisk in the cache`);
  }
}

test("deferred fields arrive after the rest over HttpLink, and are in the cache", async () => {
  await scored();
  const { contentTypes, fetchImpl } = recording();
  // chunks are the results as HttpLink hands them to the client, before
  // the handler merges them (the client may show only the merged one).
  const chunks = [];
  const client = new ApolloClient({
    link: ApolloLink.from([
      new ApolloLink((operation, forward) => forward(operation).pipe(tap((chunk) => chunks.push(chunk)))),
      new HttpLink({ uri, fetch: fetchImpl }),
    ]),
    cache: new InMemoryCache(),
    incrementalHandler: new Defer20220824Handler(),
  });
  const query = risks("DeferredRisks");
  const results = await watch(client, query);
  checkDeferred(client, query, results);
  assert.deepEqual(contentTypes, ['multipart/mixed; boundary="-"; deferSpec=20220824']);

  const [initial, ...increments] = chunks;
  const protocols = results.at(-1).data.protocols;
  assert.equal(initial.hasNext, true);
  assert.deepEqual(initial.data.protocols.map((p) => p.slug), protocols.map((p) => p.slug));
  assert.ok(initial.data.protocols.every((p) => !("latestRisk" in p)), "a deferred field came with the first result");
  // The client saw the protocols before their scores, as still streaming:
  // a deferred field is absent until it comes, not a null it would take
  // for the field's value.
  const first = results.find((r) => r.dataState !== "empty");
  assert.equal(first.dataState, "streaming");
  assert.ok(first.data.protocols.every((p) => p.latestRisk === undefined), JSON.stringify(first.data));
  assert.equal(increments.length, protocols.length, "one increment per protocol");
  increments.forEach((chunk, i) => {
    assert.equal(chunk.hasNext, i < increments.length - 1, `increment ${i}'s hasNext`);
    assert.equal(chunk.incremental.length, 1);
    const [{ data, path, label }] = chunk.incremental;
    assert.equal(label, "risk");
    assert.equal(path[0], "protocols");
    assert.deepEqual(data.latestRisk, protocols[path[1]].latestRisk, `the increment at ${path}`);
  });

  // A @defer that defers nothing is answered as plain JSON, which the
  // handler reads as well.
  const { data } = await client.query({
    query: gql`query NotDeferred { protocols { id ... @defer(if: false) { latestRisk { id score } } } }`,
    fetchPolicy: "network-only",
  });
  assert.ok(data.protocols.every((p) => typeof p.latestRisk?.score === "number"));
  assert.match(contentTypes.at(-1), /^application\/graphql-response\+json/);
});

test("the README's setup takes @defer through its persisted queries", async () => {
  await scored();
  const { contentTypes, fetchImpl } = recording();
  const client = makeClient({ uri, session: {}, fetchImpl });
  const query = risks(`DeferredRisks${Date.now()}`);
  checkDeferred(client, query, await watch(client, query));
  // The hash alone, unknown (JSON), then the document with it (multipart).
  assert.deepEqual(contentTypes.map((t) => t.split(";")[0]), ["application/graphql-response+json", "multipart/mixed"]);
});
