import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Env } from "../../worker/env.ts";
import { app } from "../../worker/http/app.ts";
import { comparable, shuffled } from "./support/permutation.ts";

const TARGETS = ["fleet-0", "fleet-1"];
const STARTS = ["2020-01-01T10:00:00Z", "2020-01-01T10:10:00Z"];
// No zero endsAt on resolved alerts here: design §4 stamps those with the receipt time, so their
// order is by definition the arrival order (test/worker/ingest-fixtures covers them).
const ENDS = ["2020-01-01T10:05:00Z", "2020-01-01T10:20:00Z"];

const alertArb = fc
  .record({
    fp: fc.integer({ min: 0, max: 3 }),
    status: fc.constantFrom("firing", "resolved"),
    starts: fc.constantFrom(...STARTS),
    ends: fc.constantFrom(...ENDS),
  })
  .map(({ fp, status, starts, ends }) => ({
    status,
    // The fingerprint decides the labels, as in Alertmanager; fleet and side follow from it.
    labels: { alertname: "FleetProbe", fleet: String(fp % 2), side: fp < 2 ? "primary" : "secondary", fp: String(fp) },
    annotations: {},
    startsAt: starts,
    endsAt: status === "firing" ? "0001-01-01T00:00:00Z" : ends,
    fingerprint: `perm-${fp}`,
  }));

const webhookArb = fc
  .array(alertArb, { minLength: 1, maxLength: 4 })
  .map((alerts) => JSON.stringify({ version: "4", status: "firing", alerts }));

/** The env, with every target's object renamed per variant, so each run starts from empty objects. */
function isolated(variant: string): Env {
  // A test double: only getByName is used by the ingest route.
  const namespace = {
    ...env.TARGETS,
    getByName: (name: string) => env.TARGETS.getByName(`${name}~${variant}`),
  } as unknown as Env["TARGETS"];
  return { ...env, TARGETS: namespace };
}

let run = 0;

describe("ingest through routing", () => {
  it("leaves every target with the same signals for any permutation and duplication of the webhooks", {
    timeout: 60_000,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(webhookArb, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.integer(),
        async (bodies, dupes, seed) => {
          run += 1;
          const post = (body: string, e: Env) =>
            app.request(
              "/v1/alertmanager",
              { method: "POST", headers: { authorization: "Bearer test-am-token" }, body },
              e,
            );
          const a = isolated(`${run}-a`);
          const b = isolated(`${run}-b`);
          for (const body of bodies) expect((await post(body, a)).status).toBe(200);
          const other = shuffled([...bodies, ...dupes.map((i) => bodies[i % bodies.length] as string)], seed);
          for (const body of other) expect((await post(body, b)).status).toBe(200);
          for (const target of TARGETS) {
            const left = comparable(await a.TARGETS.getByName(target).signals());
            const right = comparable(await b.TARGETS.getByName(target).signals());
            expect(right).toEqual(left);
          }
        },
      ),
      { numRuns: 25 },
    );
  });
});
