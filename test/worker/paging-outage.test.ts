/**
 * Delivery is durable and never in the way (design §11.4, §11.6): a webhook receiver that hangs,
 * then is down for 10 minutes, loses nothing (every event arrives afterwards, once per id, in
 * order), its failures are audited, the decisions made meanwhile are on time, and PagerDuty, a
 * second sink that works, is not delayed by it. Time is advanced by firing the object's alarm,
 * never by sleeping; only the hanging receiver's time budget is real (shortened for the test).
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { WorkerConfig } from "../../shared/config.ts";
import { outboxTesting } from "../../worker/target/outbox.ts";
import { TargetObject } from "../../worker/target/target-object.ts";
import { drained, pagingConfig, pdActions, type Receiver, receiver, signals } from "./support/paging.ts";
import { useRecordingObject } from "./support/recording-object.ts";

const T0 = Date.parse("2026-11-22T03:00:00Z");
const rec = useRecordingObject({ start: T0 });
let config: WorkerConfig;
let hook: Receiver;
let pager: Receiver;

beforeEach(() => {
  hook = receiver("outage-hook");
  pager = receiver("outage-pager");
  config = pagingConfig(
    ["po-a"],
    {
      pagerduty: { routingKeyEnv: "TEST_PAGERDUTY_ROUTING_KEY", url: pager.pagerduty },
      webhooks: [{ url: hook.hook, secretEnv: "TEST_WEBHOOK_SECRET" }],
    },
    { approval: "required" },
  );
  if (TargetObject.testing) TargetObject.testing.config = () => config;
  outboxTesting.budgetMs = 2_000;
});
afterEach(async () => {
  delete outboxTesting.budgetMs;
  await hook.mode("up");
});

describe("a sink that is down", () => {
  it("loses nothing, delays no decision and no other sink", async () => {
    const t = "po-a";
    const stub = env.TARGETS.getByName(t);
    await hook.mode("hang");
    await signals(rec, t, "primary", "firing");

    // The hold ends on time although the webhook hangs: the approval is asked at T0 + 30 s.
    const started = Date.now();
    await rec.fireAlarm(t, T0 + 30_000);
    // The webhook holds its own queue for its whole budget (2 s); the alarm does not wait for it.
    expect(Date.now() - started).toBeLessThan(1_500);
    const view = await stub.view(t);
    expect(view.phase).toBe("awaiting_approval");
    const asked = view.lastEvents?.find((e) => e.type === "approval.requested");
    expect(asked?.at).toBe(new Date(T0 + 30_000).toISOString());
    await drained(t);
    // PagerDuty got its trigger at once, while every webhook delivery has failed.
    expect(pdActions(await pager.log()).map(([a]) => a)).toEqual(["trigger"]);
    expect((await hook.log()).filter((x) => x.api === "webhook")).toEqual([]);

    // Down (connections reset) for 10 minutes; a person approves meanwhile: dispatched at once.
    await hook.mode("down");
    rec.clock = T0 + 60_000;
    expect((await stub.command(t, { command: "approve", actor: "alice" })).applied).toBe(true);
    expect(rec.dispatched.map((d) => d.issuedAt)).toEqual([new Date(T0 + 60_000).toISOString()]);
    await drained(t);
    expect(pdActions(await pager.log()).map(([a]) => a)).toEqual(["trigger", "resolve"]);
    for (let at = T0 + 90_000; at <= T0 + 630_000; at += 30_000) {
      await rec.fireAlarm(t, at);
      await drained(t);
    }
    expect((await hook.log()).filter((x) => x.api === "webhook")).toEqual([]);

    // Back: within the longest backoff (5 min) everything queued arrives.
    await hook.mode("up");
    for (let at = T0 + 660_000; at <= T0 + 1_020_000; at += 30_000) {
      await rec.fireAlarm(t, at);
      await drained(t);
    }
    const { events } = await stub.events(0, 10_000);
    const failures = events.filter((e) => e.type === "notify.failed");
    expect(failures.length).toBeGreaterThan(3);
    expect(failures.every((e) => (e.detail as { sink: string }).sink === `webhook:${hook.hook}`)).toBe(true);
    expect(events.some((e) => e.type === "notify.dropped")).toBe(false);

    // Every event once (receivers dedupe by id), in order; the sink's own failures are not sent to it.
    const seen: string[] = [];
    for (const x of (await hook.log()).filter((d) => d.api === "webhook")) {
      const id = x.headers["webhook-id"] ?? "";
      if (!seen.includes(id)) seen.push(id);
    }
    const expected = events.filter((e) => e.type !== "notify.failed").map((e) => `${t}:${e.seq}`);
    expect(seen).toEqual(expected);
    expect(expected.length).toBeGreaterThan(5);
  });

  it("an event failing for an hour is dropped, audited and posted to Slack", async () => {
    const t = "po-a";
    const stub = env.TARGETS.getByName(t);
    await hook.mode("down");
    await stub.command(t, { command: "pause", actor: "alice" });
    await drained(t);
    for (let at = T0 + 300_000; at <= T0 + 3_900_000; at += 300_000) {
      await rec.fireAlarm(t, at);
      await drained(t);
    }
    const { events } = await stub.events(0, 10_000);
    const dropped = events.filter((e) => e.type === "notify.dropped");
    expect(dropped.length).toBeGreaterThan(0);
    expect(dropped[0]?.detail).toMatchObject({
      sink: `webhook:${hook.hook}`,
      key: `${t}:1`,
      why: "failing for an hour",
    });
    expect(rec.notes.some((n) => n.text.includes(`gave up sending event ${t}:1`))).toBe(true);
  });
});
