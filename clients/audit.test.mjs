// The server against the GraphQL-over-HTTP spec, as graphql-http's own
// audits read it: every MUST and every SHOULD has to pass (MAYs are
// printed, not required).
import { test } from "node:test";
import assert from "node:assert/strict";
import { serverAudits } from "graphql-http";

const url = process.env.OBSQRA_URL ?? "http://127.0.0.1:8000";

test("GraphQL-over-HTTP audits: every MUST and SHOULD passes", async () => {
  const results = [];
  for (const audit of serverAudits({ url: `${url}/graphql` })) {
    results.push(await audit.fn());
  }
  const count = (level) => {
    const all = results.filter((r) => r.name.startsWith(level));
    return `${level} ${all.filter((r) => r.status === "ok").length}/${all.length}`;
  };
  for (const r of results) {
    console.log(`${r.id} ${r.status} ${r.name}${r.status === "ok" ? "" : `: ${r.reason}`}`);
  }
  console.log(`${count("MUST")}, ${count("SHOULD")}, ${count("MAY")}`);
  const failed = results.filter((r) => r.status !== "ok" && !r.name.startsWith("MAY"));
  assert.deepEqual(
    failed.map((r) => `${r.id} ${r.name}: ${r.reason}`),
    [],
  );
});
