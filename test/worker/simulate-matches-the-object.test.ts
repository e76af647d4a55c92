/**
 * Issue 18's fidelity check, in workerd: webhooks sent live to the real worker and its
 * TargetObject (a `record: true` target), alarms fired when the object armed them, and an agent
 * that reports `running` at dispatch and `succeeded` 5 s later; then the recording, read back as
 * `--webhooks` NDJSON, replayed by the simulator's engine (pure, so it runs here too). The
 * simulator's audit log must equal the object's, event for event: seq, time, type, detail, cause.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ActionReport } from "../../shared/protocol.ts";
import { loadConfig } from "../../worker/config.ts";
import { simulate, simulatedAgentReport } from "../../worker/simulate/engine.ts";
import { auditToDeliveries, parseWebhookLines } from "../../worker/simulate/inputs.ts";
import { type AuditEvent, SIMULATED_DELIVERY } from "../../worker/simulate/replay-target.ts";
import { AS_CONFIGURED } from "../../worker/simulate/variants.ts";
import { fetchAuditEvents } from "../../worker/simulate/worker-source.ts";
import { postAlert } from "./support/post-alert.ts";
import { useRecordingObject } from "./support/recording-object.ts";

const TARGET = "safety-record"; // test/fixtures/worker-test-config.json: record: true, hold 30 s
// Ahead of the real clock: workerd schedules alarms by real time, and one armed in the past would
// fire on its own at once; these only ever fire when the test runs them.
const T0 = (Math.floor(Date.now() / 86_400_000) + 2) * 86_400_000 + 10 * 3_600_000;
const ACTION_SECONDS = 5;
const rec = useRecordingObject(); // no clock of its own: the object reads the faked Date below

beforeEach(() => {
  // The front worker stamps receipt times with Date.now() and the object decides with it: fake
  // Date for both (same isolate), so the recording's times are the times the object decided at.
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(T0);
});
afterEach(() => {
  vi.useRealTimers();
});

const labels = (side: "primary" | "secondary") => ({ alertname: "Safety", target: TARGET, side });
const fp = (side: string, n: number) => `${side.slice(0, 4)}${n}`.padEnd(16, "0");

/** The live incident: a short blip, a long outage, both sides down, a stale HA re-send. */
const WEBHOOKS = [
  { at: 0, side: "primary", status: "firing", startsAt: 0, n: 1 },
  { at: 10, side: "primary", status: "resolved", startsAt: 0, n: 1 }, // within the hold
  { at: 60, side: "primary", status: "firing", startsAt: 60, n: 2 },
  { at: 61, side: "primary", status: "firing", startsAt: 60, n: 2 }, // a re-send: duplicate
  { at: 120, side: "secondary", status: "firing", startsAt: 120, n: 3 }, // the new active side down
  { at: 200, side: "primary", status: "resolved", startsAt: 60, n: 2 },
  { at: 210, side: "primary", status: "firing", startsAt: 60, n: 2 }, // HA peer re-sends old firing: stale
  { at: 300, side: "secondary", status: "resolved", startsAt: 120, n: 3 },
] as const;

type Stub = ReturnType<typeof env.TARGETS.getByName>;

/** The simulator's audit events as GET /v1/targets/:name/events shows the object's. */
const asApi = (events: readonly AuditEvent[]) =>
  events.map((e) => ({
    seq: e.seq,
    at: new Date(e.at).toISOString(),
    type: e.type,
    detail: JSON.parse(JSON.stringify(e.detail)) as unknown,
    cause: e.cause ?? null,
  }));

describe("the simulator replays a recorded stream to the object's own audit log", () => {
  it("gives the same events, seq by seq", async () => {
    const stub: Stub = env.TARGETS.getByName(TARGET);
    // The delivery's own words are the transport's; the live one here says what the simulator's does.
    rec.nextAttempt = { ok: true, detail: SIMULATED_DELIVERY };
    const agent: { at: number; report: ActionReport }[] = [];
    let seen = 0;
    const now = () => Date.now();
    /** The simulated agent of engine.ts: `running` at dispatch, `succeeded` ACTION_SECONDS later. */
    const collect = () => {
      for (; seen < rec.dispatched.length; seen++) {
        const r = rec.dispatched[seen];
        if (!r || agent.some((a) => a.report.actionId === r.id)) continue;
        const report = (status: "running" | "succeeded", at: number) => simulatedAgentReport(r, status, at);
        agent.push(
          { at: now(), report: report("running", now()) },
          { at: now() + ACTION_SECONDS * 1000, report: report("succeeded", now() + ACTION_SECONDS * 1000) },
        );
      }
    };
    const alarmAt = () => runInDurableObject(stub, (_o, state) => state.storage.getAlarm());
    /** Agent reports, then alarms, due at or before `t`, earliest first (the engine's order). */
    const advance = async (t: number) => {
      for (;;) {
        const alarm = await alarmAt();
        const next = agent.reduce<{ at: number; i: number } | null>(
          (best, a, i) => (best === null || a.at < best.at ? { at: a.at, i } : best),
          null,
        );
        if (next !== null && next.at <= t && (alarm === null || next.at <= alarm)) {
          const [a] = agent.splice(next.i, 1);
          vi.setSystemTime(next.at);
          if (a) await stub.report(TARGET, a.report);
        } else if (alarm !== null && alarm <= t) {
          vi.setSystemTime(alarm);
          await runDurableObjectAlarm(stub);
        } else return;
        await stub.settle();
        collect();
      }
    };

    for (const w of WEBHOOKS) {
      const at = T0 + w.at * 1000;
      await advance(at);
      vi.setSystemTime(at);
      const res = await postAlert({
        labels: labels(w.side),
        fingerprint: fp(w.side, w.n),
        startsAt: T0 + w.startsAt * 1000,
        status: w.status,
        endsAt: at,
      });
      expect(res.status).toBe(200);
      await stub.settle();
      collect();
    }
    const until = T0 + (WEBHOOKS.at(-1)?.at ?? 0) * 1000 + 3_600_000; // the engine's default end
    await advance(until);

    const live = (await stub.events(0, 10_000)).events;
    expect(live.length).toBeGreaterThan(20);
    const types = live.map((e) => e.type);
    // The run covers what it should: a held-out blip, a failover, both sides down, a blocked return.
    expect(types).toContain("action.succeeded");
    expect(types).toContain("both-sides-down");
    expect(rec.dispatched.map((r) => `${r.id} ${r.kind} → ${r.to}`)[0]).toBe(`${TARGET}:1 failover → secondary`);

    // The export a user runs `npm run simulate -- --webhooks` on (design §10), viewer role.
    const res = await exports.default.fetch(`http://w/v1/targets/${TARGET}/recording`, {
      headers: { authorization: "Bearer test-operator-token" },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/x-ndjson");
    const ndjson = await res.text();
    expect(ndjson.trim().split("\n")).toHaveLength(WEBHOOKS.length);
    const { inputs, problems } = parseWebhookLines(ndjson, "recording");
    expect(problems).toEqual([]);
    const config = loadConfig(env);
    if (!config.ok) throw new Error("worker test config invalid");
    const result = simulate(inputs, {
      config: config.value,
      variants: [AS_CONFIGURED],
      actionSeconds: ACTION_SECONDS,
    });
    const replayed = result.variants[0]?.targets.find((t) => t.name === TARGET)?.events ?? [];
    expect(asApi(replayed)).toEqual(live);

    // `--worker URL --target NAME`: the signals of the object's audit log, paged through the real
    // worker's GET /v1/targets/:name/events, replay to the same log too (duplicates and stale
    // updates are not in the log, and change nothing but `lastSeen`).
    const pagedFetch: typeof fetch = (input, init) =>
      exports.default.fetch(new Request(input instanceof Request ? input.url : String(input), init));
    const events = await fetchAuditEvents("http://w", TARGET, "test-operator-token", pagedFetch);
    expect(events).toEqual(live);
    const fromLog = auditToDeliveries(events, TARGET, "worker");
    expect(fromLog.problems).toEqual([]);
    const again = simulate(fromLog.inputs, { config: config.value, variants: [AS_CONFIGURED], actionSeconds: 5 });
    const replayedFromLog = again.variants[0]?.targets.find((t) => t.name === TARGET)?.events ?? [];
    expect(asApi(replayedFromLog)).toEqual(live);
  }, 60_000);
});
