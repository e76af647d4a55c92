import { env } from "cloudflare:workers";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Delivery } from "../../worker/engine/signals.ts";
import { TargetObject } from "../../worker/target/target-object.ts";
import { deliveryOf, noticeArb } from "./support/delivery-arb.ts";
import { comparable, shuffled } from "./support/permutation.ts";

const deliveryArb = fc
  .record({
    k: fc.integer({ min: 0, max: 3 }),
    status: fc.constantFrom("firing" as const, "resolved" as const),
    at: fc.integer({ min: 0, max: 4 }),
    incident: fc.integer({ min: 0, max: 2 }),
    soft: fc.boolean(),
    note: fc.constantFrom("x", "y"),
    notice: noticeArb(),
  })
  .map(
    ({ k, at, ...fields }): Delivery =>
      deliveryOf({
        ...fields,
        k,
        side: k % 2 === 0 ? "primary" : "secondary",
        at: 1_700_000_000_000 + at * 1000,
        receivedAt: 1_800_000_000_000,
      }),
  );

let run = 0;
/** Receipt times a little after the signals' own times, as in life (no clock skew, nothing stale). */
const RECEIVED = 1_700_000_010_000;

beforeAll(() => {
  TargetObject.testing = { now: () => RECEIVED + 60_000 };
});
afterAll(() => {
  TargetObject.testing = undefined;
});

describe("signal store", () => {
  it("ends in the same signal state for any permutation and duplication of the deliveries", {
    timeout: 30_000,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(deliveryArb, { minLength: 1, maxLength: 10 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.integer(),
        fc.integer({ min: 1, max: 4 }),
        async (deliveries, dupes, seed, batchSize) => {
          run += 1;
          const a = env.TARGETS.getByName(`permutation-${run}-a`);
          const b = env.TARGETS.getByName(`permutation-${run}-b`);
          for (const d of deliveries) {
            await a.ingest({ target: "permutation", receivedAt: RECEIVED + 1, deliveries: [d], warnings: [] });
          }
          const other = shuffled(
            [...deliveries, ...dupes.map((i) => deliveries[i % deliveries.length] as Delivery)],
            seed,
          );
          for (let i = 0; i < other.length; i += batchSize) {
            const batch = other.slice(i, i + batchSize);
            await b.ingest({ target: "permutation", receivedAt: RECEIVED + 2 + i, deliveries: batch, warnings: [] });
          }
          expect(comparable(await b.signals())).toEqual(comparable(await a.signals()));
        },
      ),
      { numRuns: 60 },
    );
  });
});
