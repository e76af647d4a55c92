/**
 * Timer-triggered drills in workerd (design §5b): the worker's `scheduled` handler starts a drill
 * for exactly the targets whose `drill.cron` is the trigger's cron; dry runs never move the active
 * side and record per-step durations; live drills fail over, hold, fail back and record two
 * recovery times; refusals and aborts are audited, never thrown.
 */

import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ActionReport, ActionRequest } from "../../shared/protocol.ts";
import { sign } from "../../shared/signature.ts";
import worker from "../../worker/index.ts";
import { runScheduledDrills } from "../../worker/target/drills.ts";
import type { TargetView } from "../../worker/target/target-object.ts";
import { postAlert } from "./support/post-alert.ts";
import { useRecordingObject } from "./support/recording-object.ts";
import { succeededReport } from "./support/reports.ts";

const T0 = Date.parse("2026-11-23T03:00:00Z");
const rec = useRecordingObject({ start: T0 });

const auth = { authorization: "Bearer test-operator-token" };
const DRY_CRON = "0 3 * * 1";
const LIVE_CRON = "30 4 * * *";

/** Runs the worker's scheduled handler for `cron` as workerd would, then lets dispatches settle. */
async function trigger(cron: string): Promise<void> {
  const controller = createScheduledController({ cron, scheduledTime: new Date(rec.clock) });
  const ctx = createExecutionContext();
  await worker.scheduled(controller, env, ctx);
  await waitOnExecutionContext(ctx);
  for (const name of ["drill-dry-a", "drill-dry-b", "drill-live"]) await env.TARGETS.getByName(name).settle();
}

async function view(target: string): Promise<TargetView> {
  const res = await exports.default.fetch(`http://w/v1/targets/${target}`, { headers: auth });
  expect(res.status).toBe(200);
  return (await res.json()) as TargetView;
}

async function report(r: ActionReport): Promise<void> {
  const raw = JSON.stringify(r);
  const res = await exports.default.fetch("http://w/v1/agent/reports", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "Turnout-Signature": await sign("test-agent-secret", raw, Date.now() / 1000),
    },
    body: raw,
  });
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ accepted: true });
}

/** A succeeded report whose two steps took 1.5 s and 2.25 s. */
function succeeded(req: ActionRequest): ActionReport {
  const at = (ms: number) => new Date(rec.clock + ms).toISOString();
  return succeededReport(req, rec.clock + 3750, [
    { name: "preflight", status: "succeeded", startedAt: at(0), finishedAt: at(1500) },
    { name: "switch", status: "succeeded", startedAt: at(1500), finishedAt: at(3750) },
  ]);
}

async function alert(target: string, side: "primary" | "secondary", status: "firing" | "resolved"): Promise<void> {
  const res = await postAlert({
    status,
    labels: { alertname: "Drill", target, side },
    startsAt: rec.clock - 1000,
    endsAt: rec.clock,
    fingerprint: `${target}-${side}`.padEnd(16, "0").slice(0, 16),
  });
  expect(res.status).toBe(200);
}

function only<T>(items: T[]): T {
  expect(items).toHaveLength(1);
  return items[0] as T;
}

describe("scheduled drills", () => {
  it("starts a drill for exactly the targets whose drill.cron is the trigger's cron", async () => {
    await trigger(DRY_CRON);
    expect(rec.dispatched.map((d) => d.target).sort()).toEqual(["drill-dry-a", "drill-dry-b"]);
    for (const d of rec.dispatched) expect(d).toMatchObject({ kind: "drill", dryRun: true });
    const events = (await view("drill-dry-a")).lastEvents ?? [];
    expect(events.find((e) => e.type === "command.accepted")?.detail).toMatchObject({
      command: "drill",
      actor: "cron",
      reason: `scheduled drill ${DRY_CRON}`,
    });
    rec.dispatched = [];
    await trigger(LIVE_CRON);
    expect(rec.dispatched).toEqual([
      expect.objectContaining({ target: "drill-live", kind: "failover", dryRun: false }),
    ]);
  });

  it("starts nothing on a cron no target is configured for", async () => {
    await trigger("15 2 * * *");
    expect(rec.dispatched).toEqual([]);
    expect((await view("drill-dry-a")).lastEvents ?? []).toEqual([]);
  });

  it("a dry-run drill leaves activeSide unchanged and records each step's result and duration", async () => {
    await trigger(DRY_CRON);
    const req = only(rec.dispatched.filter((d) => d.target === "drill-dry-a"));
    expect(req).toMatchObject({ kind: "drill", dryRun: true, from: "primary", to: "secondary" });
    rec.clock += 4000;
    await report(succeeded(req));
    const v = await view("drill-dry-a");
    expect(v).toMatchObject({ activeSide: "primary", phase: "steady" });
    expect(v.lastDrill).toMatchObject({
      mode: "dry-run",
      ok: true,
      outcome: "completed",
      switches: [
        {
          kind: "drill",
          recoveryMs: 4000,
          steps: [
            { name: "preflight", status: "succeeded", durationMs: 1500 },
            { name: "switch", status: "succeeded", durationMs: 2250 },
          ],
        },
      ],
    });
    const completed = (v.lastEvents ?? []).find((e) => e.type === "drill.completed");
    expect(completed?.detail).toMatchObject({ mode: "dry-run", ok: true });
    expect(rec.notes.some((n) => n.kind === "drill" && n.target === "drill-dry-a" && /completed/.test(n.text))).toBe(
      true,
    );
  });

  it("a live drill fails over, holds, fails back and records two recovery times", async () => {
    await trigger(LIVE_CRON);
    const over = only(rec.dispatched);
    expect(over).toMatchObject({ kind: "failover", from: "primary", to: "secondary", dryRun: false });
    rec.clock += 5000;
    await report(succeeded(over));
    expect(await view("drill-live")).toMatchObject({ activeSide: "secondary", phase: "steady" });
    // Still holding one second before holdSeconds (120 s) has passed: no fail back yet.
    await rec.fireAlarm("drill-live", rec.clock + 119_000);
    expect(rec.dispatched).toHaveLength(1);
    await rec.fireAlarm("drill-live", rec.clock + 1000);
    const back = rec.dispatched[1];
    expect(back).toMatchObject({ kind: "failback", from: "secondary", to: "primary", dryRun: false });
    rec.clock += 7000;
    await report(succeeded(back as ActionRequest));
    const v = await view("drill-live");
    expect(v).toMatchObject({ activeSide: "primary", phase: "steady", cooldownUntil: null });
    expect(v.lastDrill).toMatchObject({
      mode: "live",
      ok: true,
      outcome: "completed",
      startedAt: new Date(T0).toISOString(),
      recoveryMs: [5000, 7000],
      switches: [
        { kind: "failover", recoveryMs: 5000, ok: true },
        { kind: "failback", recoveryMs: 7000, ok: true },
      ],
    });
    expect(
      rec.notes.some((n) => n.kind === "drill" && /live drill completed \(failover 5 s, failback 7 s\)/.test(n.text)),
    ).toBe(true);
  });

  it("a live drill is refused while a side is down: audited, logged, nothing dispatched, nothing thrown", async () => {
    await alert("drill-live", "secondary", "firing");
    await trigger(LIVE_CRON);
    expect(rec.dispatched).toEqual([]);
    const v = await view("drill-live");
    expect(v.activeSide).toBe("primary");
    const rejected = (v.lastEvents ?? []).find((e) => e.type === "command.rejected");
    expect(rejected?.detail).toMatchObject({ command: "drill", actor: "cron", reason: "secondary is down" });
  });

  it("a live drill is aborted by a real signal and normal policy takes over", async () => {
    await trigger(LIVE_CRON);
    rec.clock += 5000;
    await report(succeeded(only(rec.dispatched)));
    // Holding on secondary; a real alert on the (now active) secondary ends the drill.
    rec.clock += 10_000;
    await alert("drill-live", "secondary", "firing");
    const v = await view("drill-live");
    expect(v.lastDrill).toMatchObject({ mode: "live", ok: false, outcome: "aborted" });
    expect(v.phase).toBe("pending");
    expect((v.lastEvents ?? []).some((e) => e.type === "drill.aborted")).toBe(true);
    // The drill's fail back no longer happens at the end of the hold.
    await rec.fireAlarm("drill-live", rec.clock + 120_000);
    expect(rec.dispatched.filter((d) => d.kind === "failback" && d.reason.includes("drill"))).toEqual([]);
  });

  it("one target's refusal (not steady) does not stop another's drill, and nothing throws", async () => {
    const busy = await exports.default.fetch("http://w/v1/targets/drill-dry-a/commands", {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ command: "failover", actor: "bob" }),
    });
    expect(busy.status).toBe(200);
    await env.TARGETS.getByName("drill-dry-a").settle();
    rec.dispatched = [];
    const results = await runScheduledDrills(DRY_CRON, env);
    expect(results).toEqual([
      { target: "drill-dry-a", mode: "dry-run", outcome: "refused", detail: expect.stringMatching(/executing/) },
      { target: "drill-dry-b", mode: "dry-run", outcome: "started" },
    ]);
    await env.TARGETS.getByName("drill-dry-b").settle();
    expect(rec.dispatched.map((d) => d.target)).toEqual(["drill-dry-b"]);
  });

  it("an invalid configuration starts no drill and does not throw", async () => {
    expect(await runScheduledDrills(DRY_CRON, { ...env, TURNOUT_CONFIG: "{ not json" })).toEqual([]);
    expect(rec.dispatched).toEqual([]);
  });
});
