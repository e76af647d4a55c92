/**
 * Pages (design §11.4, §11.6): each moment a person is needed triggers PagerDuty and opens an
 * Opsgenie alert once, with the key of §11.6, and the moment it is over resolves / closes the
 * same key. The receivers are local HTTP servers that validate every request against the
 * documented schema; the object is driven by its clock and alarm.
 */
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import type { WorkerConfig } from "../../shared/config.ts";
import type { ActionReport, ActionRequest } from "../../shared/protocol.ts";
import { TargetObject } from "../../worker/target/target-object.ts";
import { TEST_CREDENTIALS } from "./support/bindings.ts";
import {
  drained,
  ogActions,
  pagingConfig,
  pdActions,
  type Receiver,
  receiver,
  STATUS_URL,
  signals,
  sinksOf,
} from "./support/paging.ts";
import { useRecordingObject } from "./support/recording-object.ts";
import { succeededReport } from "./support/reports.ts";

const T0 = Date.parse("2026-11-22T03:00:00Z");
const rec = useRecordingObject({ start: T0 });
let config: WorkerConfig;
let r: Receiver;

function use(targets: string[], policy: Record<string, unknown> = {}) {
  config = pagingConfig(targets, sinksOf(r, { pagerduty: true, opsgenie: true }), policy);
}

beforeEach(() => {
  r = receiver("pages");
  if (TargetObject.testing) TargetObject.testing.config = () => config;
});

/** The seq of the event that left steady: the incident's key (§11.6). */
async function incidentKey(target: string): Promise<string> {
  const { events } = await env.TARGETS.getByName(target).events(0, 1000);
  const left = events.find((e) => e.type === "phase.changed" && (e.detail as { from: string }).from === "steady");
  if (!left) throw new Error("the target never left steady");
  return `turnout/${target}/${left.seq}`;
}

async function expectAllValid() {
  const log = await r.log();
  for (const x of log) expect({ path: x.path, errors: x.errors }).toEqual({ path: x.path, errors: [] });
  return log;
}

describe("paging", () => {
  it("an approval asked and then given: one trigger and one resolve with the same dedup_key, an Opsgenie create and close by alias", async () => {
    const t = "pg-approval";
    use([t], { approval: "required" });
    await signals(rec, t, "primary", "firing");
    await rec.fireAlarm(t, T0 + 30_000);
    await drained(t);
    const key = await incidentKey(t);
    let log = await expectAllValid();
    expect(pdActions(log)).toEqual([["trigger", key]]);
    expect(ogActions(log)).toEqual([["create", key]]);

    const trigger = log.find((x) => x.api === "pagerduty")?.json as Record<string, unknown> & {
      payload: Record<string, unknown> & { custom_details: Record<string, unknown> };
    };
    expect(trigger.routing_key).toBe(TEST_CREDENTIALS.pagerdutyRoutingKey);
    expect(trigger.payload.severity).toBe("error");
    expect(trigger.payload.component).toBe(t);
    expect(trigger.payload.source).toBe(`turnout/${t}`);
    expect(trigger.payload.summary).toBe(
      `${t}: approval requested: failover primary → secondary (policy approval: required)`,
    );
    expect(trigger.links).toEqual([{ href: STATUS_URL, text: "turnout status page" }]);
    expect(String(trigger.payload.custom_details.what_to_do)).toContain(`/turnout approve ${t}`);
    expect(trigger.payload.custom_details.sides).toMatchObject({
      primary: { health: "down", firingSources: ["alertmanager"] },
    });
    const create = log.find((x) => x.api === "opsgenie-create");
    expect(create?.headers.authorization).toBe(`GenieKey ${TEST_CREDENTIALS.opsgenieApiKey}`);
    expect(create?.json).toMatchObject({ alias: key, priority: "P2", entity: t });

    // Given: the failover is dispatched, and the page is over.
    rec.clock = T0 + 60_000;
    const stub = env.TARGETS.getByName(t);
    expect((await stub.command(t, { command: "approve", actor: "alice" })).applied).toBe(true);
    await drained(t);
    log = await expectAllValid();
    expect(pdActions(log)).toEqual([
      ["trigger", key],
      ["resolve", key],
    ]);
    expect(ogActions(log)).toEqual([
      ["create", key],
      ["close", key],
    ]);
    expect(log.find((x) => x.api === "opsgenie-close")?.query).toEqual({ identifierType: "alias" });

    // Secrets come from the env only: never in the audit log.
    const all = JSON.stringify((await stub.events(0, 1000)).events);
    expect(all).not.toContain(TEST_CREDENTIALS.pagerdutyRoutingKey);
    expect(all).not.toContain(TEST_CREDENTIALS.opsgenieApiKey);
  });

  it("a failed action triggers once (critical) and resolves once when a retry succeeds", async () => {
    const t = "pg-failed";
    use([t]);
    const stub = env.TARGETS.getByName(t);
    expect((await stub.command(t, { command: "failover", actor: "alice", reason: "gw-a dead" })).applied).toBe(true);
    await stub.settle();
    const first = lastDispatch();
    rec.clock = T0 + 20_000;
    await stub.report(t, failedReport(first, rec.clock));
    await drained(t);
    const key = `turnout/${t}/action/${first.id}`;
    let log = await expectAllValid();
    expect(pdActions(log)).toEqual([["trigger", key]]);
    const trigger = log.find((x) => x.api === "pagerduty")?.json as {
      payload: { severity: string; summary: string; custom_details: { action: unknown; what_to_do: string } };
    };
    expect(trigger.payload.severity).toBe("critical");
    expect(trigger.payload.custom_details.action).toMatchObject({ id: first.id, status: "failed" });
    expect(trigger.payload.custom_details.what_to_do).toContain(`/turnout retry ${t}`);

    // A retry runs (still open), then succeeds: over.
    rec.clock = T0 + 60_000;
    expect((await stub.command(t, { command: "retry", actor: "alice" })).applied).toBe(true);
    await drained(t);
    expect(pdActions(await r.log())).toEqual([["trigger", key]]);
    const retry = lastDispatch();
    expect(retry.id).not.toBe(first.id);
    rec.clock = T0 + 80_000;
    await stub.report(t, succeededReport(retry, rec.clock));
    await drained(t);
    log = await expectAllValid();
    expect(pdActions(log)).toEqual([
      ["trigger", key],
      ["resolve", key],
    ]);
    expect(ogActions(log)).toEqual([
      ["create", key],
      ["close", key],
    ]);
  });

  it("a break-glass request triggers once and resolves when a second operator confirms it", async () => {
    const t = "pg-breakglass";
    use([t]);
    const stub = env.TARGETS.getByName(t);
    const nonce = "0123456789abcdef0123456789abcdef";
    await stub.requestBreakGlass(t, {
      nonce,
      command: "failover",
      requesterId: "alice",
      requester: "alice",
      reason: "secondary is fine, the alert is wrong",
      via: "api",
    });
    await drained(t);
    const key = `turnout/${t}/breakglass/${nonce}`;
    let log = await expectAllValid();
    expect(pdActions(log)).toEqual([["trigger", key]]);
    const trigger = log.find((x) => x.api === "pagerduty")?.json as {
      payload: { severity: string; custom_details: { what_to_do: string } };
    };
    expect(trigger.payload.severity).toBe("error");
    expect(trigger.payload.custom_details.what_to_do).toContain(`"request": "${nonce}"`);

    rec.clock = T0 + 60_000;
    const out = await stub.resolveBreakGlass(t, { nonce, decision: "approve", actorId: "bob", actor: "bob" });
    expect(out.outcome).toBe("executed");
    await drained(t);
    log = await expectAllValid();
    expect(pdActions(log).filter(([, k]) => k === key)).toEqual([
      ["trigger", key],
      ["resolve", key],
    ]);
  });

  it("a break-glass request nobody answers resolves at its expiry, from the alarm", async () => {
    const t = "pg-breakglass-expiry";
    use([t]);
    const stub = env.TARGETS.getByName(t);
    const nonce = "fedcba9876543210fedcba9876543210";
    await stub.requestBreakGlass(t, {
      nonce,
      command: "failover",
      requesterId: "alice",
      requester: "alice",
      reason: "",
    });
    await drained(t);
    const key = `turnout/${t}/breakglass/${nonce}`;
    expect(pdActions(await r.log())).toEqual([["trigger", key]]);
    expect(await rec.fireAlarm(t, T0 + 15 * 60_000)).toBe(true);
    await drained(t);
    expect(pdActions(await expectAllValid())).toEqual([
      ["trigger", key],
      ["resolve", key],
    ]);
  });

  it("an automatic failover blocked while the active side is down triggers once and resolves when the side recovers", async () => {
    const t = "pg-blocked";
    use([t]);
    const stub = env.TARGETS.getByName(t);
    expect((await stub.command(t, { command: "pause", actor: "alice" })).applied).toBe(true);
    rec.clock = T0 + 1_000;
    await signals(rec, t, "primary", "firing");
    await rec.fireAlarm(t, T0 + 31_000);
    // More of the same incident while blocked: no second page.
    rec.clock = T0 + 40_000;
    await signals(rec, t, "primary", "firing", ["am:gw-down", "am:gw-unreachable"]);
    await rec.fireAlarm(t, T0 + 80_000);
    await drained(t);
    const key = await incidentKey(t);
    let log = await expectAllValid();
    expect(pdActions(log)).toEqual([["trigger", key]]);
    const trigger = log.find((x) => x.api === "pagerduty")?.json as { payload: { severity: string; summary: string } };
    expect(trigger.payload.severity).toBe("critical");
    expect(trigger.payload.summary).toContain("paused");

    rec.clock = T0 + 120_000;
    await signals(rec, t, "primary", "resolved", ["am:gw-down", "am:gw-unreachable"]);
    await drained(t);
    log = await expectAllValid();
    expect(pdActions(log)).toEqual([
      ["trigger", key],
      ["resolve", key],
    ]);
    expect(ogActions(log)).toEqual([
      ["create", key],
      ["close", key],
    ]);
  });

  it("a trigger still queued when its resolve is due is dropped with it", async () => {
    const t = "pg-dropped-pair";
    use([t], { approval: "required" });
    await r.mode("down");
    await signals(rec, t, "primary", "firing");
    await rec.fireAlarm(t, T0 + 30_000);
    await drained(t);
    // Cancelled before the trigger's first retry is due (2 s after it failed), so it is not in flight.
    rec.clock = T0 + 31_000;
    const stub = env.TARGETS.getByName(t);
    expect((await stub.command(t, { command: "cancel", actor: "alice" })).applied).toBe(true);
    await r.mode("up");
    await rec.fireAlarm(t, T0 + 10 * 60_000);
    await drained(t);
    expect(pdActions(await r.log())).toEqual([]);
    expect(ogActions(await r.log())).toEqual([]);
  });
});

function lastDispatch(): ActionRequest {
  const req = rec.dispatched.at(-1);
  if (!req) throw new Error("nothing dispatched");
  return req;
}

function failedReport(req: ActionRequest, atMs: number): ActionReport {
  return {
    actionId: req.id,
    target: req.target,
    status: "failed",
    dryRun: false,
    steps: [{ name: "switch", status: "failed" }],
    error: { code: "dns", message: "SERVFAIL from the primary server" },
    at: new Date(atMs).toISOString(),
  };
}
