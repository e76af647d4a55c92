/**
 * Outgoing events (design §11.4): every audit event reaches each webhook as a CloudEvents 1.0
 * structured JSON event, signed per Standard Webhooks. The consumer's check runs in Node with the
 * real libraries (`standardwebhooks` verifies, the `cloudevents` SDK parses); a tampered body or
 * signature is refused.
 */
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import type { WorkerConfig } from "../../shared/config.ts";
import { TargetObject } from "../../worker/target/target-object.ts";
import { TEST_CREDENTIALS } from "./support/bindings.ts";
import { drained, pagingConfig, type Receiver, receiver, signals, sinksOf, verifyDelivery } from "./support/paging.ts";
import { useRecordingObject } from "./support/recording-object.ts";

// Standard Webhooks receivers refuse a timestamp more than 5 minutes from their own clock: the
// object's clock starts at the real time here.
const T0 = Math.floor(Date.now() / 1000) * 1000;
const rec = useRecordingObject({ start: T0 });
let config: WorkerConfig;
let r: Receiver;

beforeEach(() => {
  r = receiver("hooks");
  config = pagingConfig(["wh-a"], sinksOf(r, { webhook: true }));
  if (TargetObject.testing) TargetObject.testing.config = () => config;
});

describe("webhooks", () => {
  it("sends every audit event, in order, as a signed CloudEvent that verifies and parses", async () => {
    const t = "wh-a";
    const stub = env.TARGETS.getByName(t);
    await stub.command(t, { command: "pause", actor: "alice", reason: "maintenance <window>" });
    rec.clock = T0 + 1_000;
    await signals(rec, t, "primary", "firing");
    await drained(t);
    const { events } = await stub.events(0, 1000);
    const log = (await r.log()).filter((x) => x.api === "webhook");
    expect(log.map((x) => x.headers["webhook-id"])).toEqual(events.map((e) => `${t}:${e.seq}`));

    for (const [i, x] of log.entries()) {
      const e = events[i];
      if (!e) throw new Error("more deliveries than events");
      expect(x.headers["content-type"]).toContain("application/cloudevents+json");
      const out = await verifyDelivery(TEST_CREDENTIALS.webhookSecret, x.headers, x.body);
      expect(out.error).toBeUndefined();
      expect(out.verified).toBe(true);
      expect(out.event).toMatchObject({
        specversion: "1.0",
        id: `${t}:${e.seq}`,
        source: `turnout/${t}`,
        type: `dev.turnout.${e.type}`,
        datacontenttype: "application/json",
        data: { target: t, seq: e.seq, type: e.type, detail: e.detail },
      });
    }
    const paused = log.find((x) => x.body.includes("dev.turnout.command.accepted"));
    expect(paused).toBeDefined();
  });

  it("a tampered body, or a signature made with another secret, does not verify", async () => {
    const t = "wh-a";
    await env.TARGETS.getByName(t).command(t, { command: "pause", actor: "alice" });
    await drained(t);
    const [x] = (await r.log()).filter((d) => d.api === "webhook");
    if (!x) throw new Error("no delivery");
    expect((await verifyDelivery(TEST_CREDENTIALS.webhookSecret, x.headers, x.body)).verified).toBe(true);

    const tampered = x.body.replace('"actor":"alice"', '"actor":"mallory"');
    expect(tampered).not.toBe(x.body);
    expect((await verifyDelivery(TEST_CREDENTIALS.webhookSecret, x.headers, tampered)).verified).toBe(false);
    const otherId = { ...x.headers, "webhook-id": `${t}:999` };
    expect((await verifyDelivery(TEST_CREDENTIALS.webhookSecret, otherId, x.body)).verified).toBe(false);
    const otherSecret = "whsec_b3RoZXItc2VjcmV0LW5vdC10aGUtb25lLXNpZ25lZA==";
    expect((await verifyDelivery(otherSecret, x.headers, x.body)).verified).toBe(false);
  });
});
