/**
 * An alert storm (design §11.6): 10,000 alerts over 100 targets page each target once per
 * incident, however many alerts of the incident keep arriving, and resolve it once.
 */
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import type { WorkerConfig } from "../../shared/config.ts";
import { TargetObject } from "../../worker/target/target-object.ts";
import { drained, pagingConfig, pdActions, type Receiver, receiver, signals, sinksOf } from "./support/paging.ts";
import { useRecordingObject } from "./support/recording-object.ts";

const T0 = Date.parse("2026-11-22T03:00:00Z");
const rec = useRecordingObject({ start: T0 });
const TARGETS = Array.from({ length: 100 }, (_, i) => `storm-${i}`);
const BATCHES = 10;
const PER_BATCH = 10;
let config: WorkerConfig;
let r: Receiver;

beforeEach(() => {
  r = receiver("storm");
  config = pagingConfig(TARGETS, sinksOf(r, { pagerduty: true }), { approval: "required" });
  if (TargetObject.testing) TargetObject.testing.config = () => config;
});

describe("an alert storm", () => {
  it("10,000 alerts over 100 targets: at most one trigger per target per incident", { timeout: 120_000 }, async () => {
    let sent = 0;
    for (let b = 0; b < BATCHES; b++) {
      rec.clock = T0 + b * 10_000;
      const keys = Array.from({ length: PER_BATCH }, (_, i) => `am:storm-${b}-${i}`);
      await Promise.all(
        TARGETS.map(async (t) => {
          await signals(rec, t, "primary", "firing", keys);
          // The hold ends while the storm goes on; the alarm asks for approval once.
          if (b === 3) await rec.fireAlarm(t, rec.clock);
        }),
      );
      sent += TARGETS.length * PER_BATCH;
    }
    expect(sent).toBe(10_000);
    await Promise.all(TARGETS.map((t) => drained(t)));
    // A page that did not get through under the storm is retried from the alarm (and once only).
    for (const at of [T0 + 120_000, T0 + 150_000]) {
      await Promise.all(TARGETS.map((t) => rec.fireAlarm(t, at).then(() => drained(t))));
    }
    const log = await r.log();
    expect(log.every((x) => x.valid)).toBe(true);
    // One incident per target: one dedup_key. (A request whose answer was lost under the storm may
    // be retried with the same key; PagerDuty, like the receiver here, counts it once.)
    const triggers = new Map<string, Set<string>>();
    for (const [action, key] of pdActions(log)) {
      if (action !== "trigger") continue;
      const target = key.split("/")[1] ?? "";
      triggers.set(target, (triggers.get(target) ?? new Set()).add(key));
    }
    expect([...triggers.keys()].sort()).toEqual([...TARGETS].sort());
    for (const keys of triggers.values()) expect(keys.size).toBe(1);

    // The incident ends (every alert resolves): each page resolves once.
    rec.clock = T0 + 200_000;
    await Promise.all(
      TARGETS.map(async (t) => {
        for (let b = 0; b < BATCHES; b++) {
          const keys = Array.from({ length: PER_BATCH }, (_, i) => `am:storm-${b}-${i}`);
          await signals(rec, t, "primary", "resolved", keys);
        }
        expect((await env.TARGETS.getByName(t).view(t)).phase).toBe("steady");
      }),
    );
    await Promise.all(TARGETS.map((t) => drained(t)));
    for (const at of [T0 + 240_000, T0 + 270_000]) {
      await Promise.all(TARGETS.map((t) => rec.fireAlarm(t, at).then(() => drained(t))));
    }
    const resolves = pdActions(await r.log()).filter(([a]) => a === "resolve");
    const resolved = new Set(resolves.map(([, k]) => k));
    expect(resolved).toEqual(new Set([...triggers.values()].flatMap((keys) => [...keys])));
  });
});
