// An Apollo Client set up the way the README shows a frontend doing it:
// the access token on every request, a refresh of the session on
// UNAUTHENTICATED (then the operation again, once), automatic persisted
// queries, batching, @defer delivered in increments, and subscriptions
// over HTTP (Apollo's multipart subscriptions). setup.test.mjs,
// defer.test.mjs and multipart.test.mjs run it against the server.
import { ApolloClient, ApolloLink, CombinedGraphQLErrors, HttpLink, InMemoryCache } from "@apollo/client";
import { Defer20220824Handler } from "@apollo/client/incremental";
import { BatchHttpLink } from "@apollo/client/link/batch-http";
import { SetContextLink } from "@apollo/client/link/context";
import { ErrorLink } from "@apollo/client/link/error";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { BREAK, visit } from "graphql";
import { createHash } from "node:crypto"; // in a browser: crypto.subtle.digest("SHA-256", …)
import { OperationTypeNode } from "graphql";
import { from, switchMap } from "rxjs";

// defers reports whether the document query has a @defer.
export function defers(query) {
  let found = false;
  visit(query, {
    Directive(node) {
      if (node.name.value !== "defer") return undefined;
      found = true;
      return BREAK;
    },
  });
  return found;
}

// makeClient returns a client of the server at uri (".../graphql").
// session holds { accessToken, refreshToken } and is updated in place when
// the session is refreshed; fetchImpl defaults to the global fetch.
export function makeClient({ uri, session, fetchImpl = fetch }) {
  const auth = new SetContextLink(({ headers }) => ({
    headers: { ...headers, ...(session.accessToken ? { authorization: `Bearer ${session.accessToken}` } : {}) },
  }));

  // One refresh at a time, shared by the operations that need it.
  let refreshing = null;
  const refresh = () =>
    (refreshing ??= fetchImpl(uri, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        query: "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken } }",
        variables: { t: session.refreshToken },
      }),
    })
      .then((r) => r.json())
      .then(({ data, errors }) => {
        if (errors?.length) throw new Error(`refresh failed: ${errors[0].message}`);
        Object.assign(session, data.refreshSession);
      })
      .finally(() => (refreshing = null)));

  const retryOnUnauthenticated = new ErrorLink(({ error, operation, forward }) => {
    const unauthenticated =
      CombinedGraphQLErrors.is(error) && error.errors.some((e) => e.extensions?.code === "UNAUTHENTICATED");
    if (!unauthenticated || !session.refreshToken || operation.getContext().retried) return;
    operation.setContext({ retried: true });
    return from(refresh()).pipe(switchMap(() => forward(operation)));
  });

  const persisted = new PersistedQueryLink({
    sha256: (query) => createHash("sha256").update(query).digest("hex"),
  });
  // A batch is answered with one JSON array: an operation with @defer goes
  // alone through an HttpLink, whose response brings its increments as they
  // come (multipart/mixed; through the batch it would come whole), and so
  // does a subscription, each its own multipart stream.
  const single = new HttpLink({ uri, fetch: fetchImpl });
  const http = ApolloLink.split(
    ({ query }) => defers(query),
    single,
    new BatchHttpLink({ uri, batchMax: 10, batchInterval: 10, fetch: fetchImpl }),
  );
  const isSubscription = ({ operationType }) => operationType === OperationTypeNode.SUBSCRIPTION;

  return new ApolloClient({
    link: ApolloLink.from([
      retryOnUnauthenticated,
      auth,
      ApolloLink.split(isSubscription, single, ApolloLink.from([persisted, http])),
    ]),
    cache: new InMemoryCache(),
    // Reads the increments of @defer in the format the server sends.
    incrementalHandler: new Defer20220824Handler(),
  });
}
