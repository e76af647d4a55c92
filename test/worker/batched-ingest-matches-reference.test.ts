/**
 * Issue 19: the TargetObject's optimized ingest (batched SQL writes, duplicates touching only
 * `last_seen`, observing from aggregates, skipped no-op decides, the cached state) behaves as the
 * old per-signal path. Random batches, clock steps and alarms go through the object and through
 * the old core (test/worker/support/reference-core.ts, over memory); the stored rows, the audit
 * events and the machine state must be equal.
 */
import { env, runInDurableObject } from "cloudflare:test";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicySchema, type WorkerConfig, WorkerConfigSchema } from "../../shared/config.ts";
import type { Delivery, StoredSignal } from "../../worker/engine/signals.ts";
import { TargetObject } from "../../worker/target/target-object.ts";
import testConfig from "../fixtures/worker-test-config.json" with { type: "json" };
import { deliveryOf, noticeArb } from "./support/delivery-arb.ts";
import * as reference from "./support/reference-core.ts";

const TARGET = "batched-ref";
const T0 = 1_800_000_000_000;

const side = (s: string) => ({ matchers: [`target="${TARGET}"`, `side="${s}"`] });
/** The test config plus the target: staleness after 60 s, so clock steps make signals stale and
 * fresh again; a hold longer than any run, so no dispatch (whose result the object would feed
 * back) starts. */
const config: WorkerConfig = WorkerConfigSchema.parse({
  ...structuredClone(testConfig),
  targets: {
    ...structuredClone(testConfig.targets),
    [TARGET]: {
      sides: { primary: side("primary"), secondary: side("secondary") },
      policy: { holdSeconds: 3600, staleAfterSeconds: 60, quorum: 1 },
    },
  },
});

const deliveryArb = (clock: number) =>
  fc
    .record({
      k: fc.integer({ min: 0, max: 5 }),
      status: fc.constantFrom("firing" as const, "firing" as const, "resolved" as const),
      ago: fc.integer({ min: -400, max: 30 }),
      incident: fc.integer({ min: 0, max: 2 }),
      soft: fc.boolean(),
      note: fc.constantFrom("x", "y"),
      notice: noticeArb(4),
    })
    .map(
      ({ k, ago, ...fields }): Delivery =>
        deliveryOf({
          ...fields,
          k,
          side: k % 3 === 0 ? "secondary" : "primary",
          // Mostly a little in the past; sometimes far ahead of receipt (clock skew is clamped).
          at: clock - ago * 1000,
          receivedAt: clock,
        }),
    );

/** One step: a webhook's batch for the target, or the alarm; then the clock moves on. */
type Step = { kind: "batch"; deliveries: Delivery[]; advanceMs: number } | { kind: "alarm"; advanceMs: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("batch" as const),
      deliveries: fc.array(deliveryArb(T0), { minLength: 1, maxLength: 8 }),
      advanceMs: fc.integer({ min: 0, max: 90_000 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("alarm" as const), advanceMs: fc.integer({ min: 0, max: 90_000 }) }),
  },
);

/** A delivery generated at T0, moved to the step's clock (same offsets). */
const at = (d: Delivery, clock: number): Delivery => ({
  side: d.side,
  signal: { ...d.signal, at: d.signal.at - T0 + clock, receivedAt: clock },
});

let clock = T0;
let run = 0;

beforeAll(() => {
  TargetObject.testing = {
    now: () => clock,
    config: () => config,
    dispatcher: { dispatch: async () => ({ ok: true, detail: "recorded" }) },
    notifier: { notify: async () => {} },
  };
});
afterAll(() => {
  TargetObject.testing = undefined;
});

// As the object's fallback for a target missing from the config (never used here: it is configured).
const DEFAULT: reference.TargetConfig = {
  policy: PolicySchema.parse(undefined),
  initialActiveSide: "primary",
  sides: { primary: { matchers: ['turnout="unconfigured"'] }, secondary: { matchers: ['turnout="unconfigured"'] } },
};

/**
 * The object observes from the firing signals it keeps in memory, and from SQLite's aggregates
 * once they are more than it holds: both ways, and switching from one to the other mid-run.
 */
const OBSERVING = [
  { how: "from memory", firingInMemoryMax: undefined },
  { how: "from SQLite's aggregates", firingInMemoryMax: 0 },
  { how: "from memory, then SQLite once more than 3 fire", firingInMemoryMax: 3 },
];

describe.each(OBSERVING)(
  "the batched ingest path matches the old per-signal path, observing $how",
  ({ firingInMemoryMax }) => {
    beforeAll(() => {
      if (TargetObject.testing) TargetObject.testing.firingInMemoryMax = firingInMemoryMax;
    });

    it("stores the same rows, audits the same events and reaches the same state for random batches, clock steps and alarms", {
      timeout: 120_000,
    }, async () => {
      const target = config.targets[TARGET];
      if (!target) throw new Error("test config lacks the target");
      await fc.assert(
        fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 12 }), async (steps) => {
          run += 1;
          clock = T0;
          const stub = env.TARGETS.getByName(`batched-ref-${run}`);
          const store = new reference.ReferenceStore();
          let state: reference.CoreState | undefined;
          for (const step of steps) {
            if (step.kind === "batch") {
              const deliveries = step.deliveries.map((d) => at(d, clock));
              await stub.ingest({ target: TARGET, receivedAt: clock, deliveries, warnings: [] });
              if (state) reference.applyConfig(store, state, target, clock);
              else state = reference.newCoreState(TARGET, target, DEFAULT);
              reference.ingest(store, state, deliveries, [], clock, clock);
            } else {
              await runInDurableObject(stub, (instance: TargetObject) => instance.alarm());
              if (state) {
                reference.applyConfig(store, state, target, clock);
                reference.alarm(store, state, clock);
              }
            }
            clock += step.advanceMs;
          }
          const byKey = (a: StoredSignal, b: StoredSignal) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
          expect(await stub.signals()).toEqual([...store.signals.values()].sort(byKey));
          const page = await stub.events(0, 10_000);
          expect(page.events).toEqual(
            store.events.map((e) => ({
              seq: e.seq,
              at: new Date(e.at).toISOString(),
              type: e.type,
              detail: JSON.parse(JSON.stringify(e.detail)),
              cause: e.cause ?? null,
            })),
          );
          const stored = await stub.state();
          expect(stored?.machine).toEqual(state?.machine);
          expect(stored?.observation).toEqual(state?.observation);
        }),
        { numRuns: 40 },
      );
    });
  },
);
