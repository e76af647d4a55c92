import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Delivery, Notice, Signal } from "../../worker/engine/signals.ts";
import { TargetObject } from "../../worker/target/target-object.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");

// The object's clock just after the deliveries' receipt times, so nothing here is stale (§4).
beforeAll(() => {
  TargetObject.testing = { now: () => T0 + 60_000 };
});
afterAll(() => {
  TargetObject.testing = undefined;
});

function delivery(overrides: Partial<Signal> & { side?: "primary" | "secondary" } = {}): Delivery {
  const { side = "primary", ...signal } = overrides;
  const key = signal.key ?? "am:abc";
  return {
    side,
    signal: {
      source: "alertmanager",
      key,
      incident: `${key}@start`,
      status: "firing",
      soft: false,
      labels: { alertname: "X" },
      annotations: {},
      at: T0,
      receivedAt: T0,
      ...signal,
    },
  };
}

/** A fresh object per test posing as `target` (its policy comes from the test config). */
function fresh(target = "operator-view") {
  const stub = env.TARGETS.getByName(`${target}-${crypto.randomUUID()}`);
  const ingest = (deliveries: Delivery[], receivedAt = T0) =>
    stub.ingest({ target, receivedAt, deliveries, warnings: [] });
  return { stub, ingest };
}

describe("TargetObject signals", () => {
  it("counts a repeated delivery as a duplicate that only moves lastSeen", async () => {
    const { stub, ingest } = fresh();
    expect(await ingest([delivery()], T0)).toEqual({ accepted: 1, duplicates: 0, ignored: 0 });
    const before = await stub.events(0, 100);
    expect(await ingest([delivery()], T0 + 5000)).toEqual({ accepted: 0, duplicates: 1, ignored: 0 });
    const [stored] = await stub.signals();
    expect(stored).toMatchObject({ status: "firing", firstSeen: T0, lastSeen: T0 + 5000 });
    expect(await stub.events(0, 100)).toEqual(before);
  });

  it("ignores an older firing re-sent after the resolve (Alertmanager HA peers)", async () => {
    const { stub, ingest } = fresh();
    await ingest([delivery({ at: T0 })]);
    await ingest([delivery({ status: "resolved", at: T0 + 60_000 })]);
    expect(await ingest([delivery({ at: T0 })])).toEqual({ accepted: 0, duplicates: 0, ignored: 1 });
    expect((await stub.signals())[0]?.status).toBe("resolved");
  });

  it("opens a new incident when the same key fires again later", async () => {
    const { stub, ingest } = fresh();
    await ingest([delivery({ at: T0 })]);
    await ingest([delivery({ status: "resolved", at: T0 + 60_000 })]);
    const refire = delivery({ at: T0 + 120_000, incident: "am:abc@later" });
    expect(await ingest([refire])).toMatchObject({ accepted: 1 });
    expect((await stub.signals())[0]).toMatchObject({ status: "firing", incident: "am:abc@later" });
  });

  it("assigns event seqs contiguously from one counter shared with the decision engine, with causes", async () => {
    const { stub, ingest } = fresh();
    await ingest([delivery(), delivery({ key: "am:def", side: "secondary", status: "resolved" })]);
    const { events } = await stub.events(0, 100);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.slice(0, 2).map((e) => e.type)).toEqual(["signal.firing", "signal.resolved"]);
    // The machine's reaction (primary down → pending) is caused by the last signal event.
    const health = events.find((e) => e.type === "side.health-changed");
    expect(health).toMatchObject({ cause: 2, detail: expect.objectContaining({ side: "primary" }) });
    expect(events.find((e) => e.type === "phase.changed")).toMatchObject({ detail: { from: "steady", to: "pending" } });
    expect((await stub.state())?.machine.seq).toBe(events.length);
  });

  it("pages the audit log with next until the last page", async () => {
    const { stub, ingest } = fresh();
    for (let i = 0; i < 5; i++) await ingest([delivery({ key: `am:${i}`, side: "secondary", status: "resolved" })]);
    const all = (await stub.events(0, 100)).events;
    expect(all.length).toBeGreaterThanOrEqual(5);
    const first = await stub.events(0, 4);
    expect(first.events.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(first.next).toBe(4);
    const second = await stub.events(4, 100);
    expect(second.events.map((e) => e.seq)).toEqual(all.slice(4).map((e) => e.seq));
    expect(second.next).toBeUndefined();
  });

  it("calls a side down only at quorum distinct sources, and never for SOFT states", async () => {
    const { stub, ingest } = fresh("quorum-two");
    await ingest([delivery({ key: "am:q1" })]);
    await ingest([delivery({ key: "am:q2" })]);
    await ingest([delivery({ key: "nagios:h!soft", source: "nagios", soft: true })]);
    let view = await stub.view("quorum-two");
    // Firing below quorum is neither down nor up: the machine calls it unknown (never acts on it).
    expect(view.sides.primary.health).toBe("unknown");
    expect(view.sides.primary.firing).toHaveLength(3);
    await ingest([delivery({ key: "nagios:h!hard", source: "nagios" })]);
    view = await stub.view("quorum-two");
    expect(view.sides.primary.health).toBe("down");
    expect((await stub.state())?.observation.primary.firingSources).toEqual(["alertmanager", "nagios"]);
  });

  it("holds a Nagios key while it flaps or is in downtime, FLAPPINGSTOP and FLAPPINGEND alike", async () => {
    const { stub, ingest } = fresh();
    const nagios = (at: number, notice?: Notice) =>
      delivery({
        key: "nagios:h!s",
        source: "nagios",
        incident: "nagios:h!s#problem:1",
        at,
        ...(notice ? { notice } : {}),
      });
    await ingest([nagios(T0)]);
    expect((await stub.state())?.observation.primary).toEqual({
      firingSources: ["nagios"],
      heldSources: [],
      staleSources: [],
      incidents: ["nagios:h!s#problem:1"],
    });
    await ingest([nagios(T0 + 1000, { kind: "flapping", active: true })]);
    expect((await stub.state())?.observation.primary).toEqual({
      firingSources: [],
      heldSources: ["nagios"],
      staleSources: [],
      incidents: ["nagios:h!s#problem:1"],
    });
    expect((await stub.view("operator-view")).sides.primary.firing[0]?.held).toBe(true);
    await ingest([nagios(T0 + 2000, { kind: "flapping", active: false })]);
    await ingest([nagios(T0 + 3000, { kind: "downtime", active: true })]);
    expect((await stub.state())?.observation.primary.heldSources).toEqual(["nagios"]);
    await ingest([nagios(T0 + 4000, { kind: "downtime", active: false })]);
    expect((await stub.state())?.observation.primary).toEqual({
      firingSources: ["nagios"],
      heldSources: [],
      staleSources: [],
      incidents: ["nagios:h!s#problem:1"],
    });
  });

  it("writes a warning event even when no signal changed", async () => {
    const { stub } = fresh();
    await stub.ingest({
      target: "operator-view",
      receivedAt: T0,
      deliveries: [],
      warnings: [{ type: "ingest.truncated", detail: { truncatedAlerts: 3 } }],
    });
    expect((await stub.events(0, 10)).events).toMatchObject([{ seq: 1, type: "ingest.truncated", cause: null }]);
  });
});
