/**
 * The decision engine inside the Durable Object, in workerd: alarms (not sleeps) drive hold
 * expiry, approval expiry and action timeouts; commands and signed reports go through the HTTP
 * API; evicting the object between any two inputs changes no decision.
 */

import { evictDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { validateWorkerConfig } from "../../shared/config.ts";
import type { ActionReport, ActionRequest } from "../../shared/protocol.ts";
import { sign } from "../../shared/signature.ts";
import { transportDispatcher } from "../../worker/agents/dispatcher.ts";
import type { TargetView } from "../../worker/target/target-object.ts";
import testConfig from "../fixtures/worker-test-config.json" with { type: "json" };
import { postAlert } from "./support/post-alert.ts";
import { useRecordingObject } from "./support/recording-object.ts";
import { succeededReport } from "./support/reports.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const rec = useRecordingObject({ start: T0 });

const auth = { authorization: "Bearer test-operator-token" };

async function alert(target: string, side: "primary" | "secondary", status: "firing" | "resolved", at = rec.clock) {
  const res = await postAlert({
    status,
    labels: { alertname: "Decide", target, side },
    startsAt: T0 - 1000,
    endsAt: at,
    fingerprint: `${target}-${side}`.padEnd(16, "0").slice(0, 16),
  });
  expect(res.status).toBe(200);
}

async function view(target: string): Promise<TargetView> {
  return (await (await exports.default.fetch(`http://w/v1/targets/${target}`, { headers: auth })).json()) as TargetView;
}

async function command(target: string, body: Record<string, unknown>): Promise<Response> {
  return exports.default.fetch(`http://w/v1/targets/${target}/commands`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function report(r: ActionReport, secret = "test-agent-secret"): Promise<Response> {
  const raw = JSON.stringify(r);
  return exports.default.fetch("http://w/v1/agent/reports", {
    method: "POST",
    headers: { "content-type": "application/json", "Turnout-Signature": await sign(secret, raw, Date.now() / 1000) },
    body: raw,
  });
}

const succeeded = (req: ActionRequest): ActionReport => succeededReport(req, rec.clock);

describe("decisions inside the TargetObject", () => {
  it("fails over once the hold expires by alarm, and a signed succeeded report makes the other side active", async () => {
    await alert("decide-auto", "primary", "firing");
    expect((await view("decide-auto")).phase).toBe("pending");
    expect(await rec.fireAlarm("decide-auto", T0 + 29_000)).toBe(true);
    expect(rec.dispatched).toHaveLength(0);
    await rec.fireAlarm("decide-auto", T0 + 30_000);
    expect(rec.dispatched).toEqual([
      expect.objectContaining({
        id: "decide-auto:1",
        kind: "failover",
        from: "primary",
        to: "secondary",
        dryRun: false,
      }),
    ]);
    expect((await view("decide-auto")).phase).toBe("executing");
    const req = rec.dispatched[0] as ActionRequest;
    const res = await report(succeeded(req));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ accepted: true });
    const v = await view("decide-auto");
    expect(v).toMatchObject({ activeSide: "secondary", phase: "steady" });
    expect(v.cooldownUntil).not.toBeNull();
    expect(rec.notes.map((n) => n.kind)).toContain("action");
    const types = v.lastEvents?.map((e) => e.type) ?? [];
    expect(types).toEqual(expect.arrayContaining(["signal.firing", "action.dispatched", "action.succeeded"]));
  });

  it("takes no action when the side recovers during the hold", async () => {
    await alert("decide-auto", "primary", "firing");
    rec.clock = T0 + 10_000;
    await alert("decide-auto", "primary", "resolved");
    await rec.fireAlarm("decide-auto", T0 + 60_000);
    expect(rec.dispatched).toHaveLength(0);
    expect((await view("decide-auto")).phase).toBe("steady");
  });

  it("waits for approval on approval: required targets, and the approval expires back to steady by alarm", async () => {
    await alert("decide-approval", "primary", "firing");
    await rec.fireAlarm("decide-approval", T0 + 30_000);
    expect((await view("decide-approval")).phase).toBe("awaiting_approval");
    expect(rec.dispatched).toHaveLength(0);
    await rec.fireAlarm("decide-approval", T0 + 30_000 + 120_000);
    expect((await view("decide-approval")).phase).toBe("steady");
    expect(rec.notes.some((n) => n.kind === "approval")).toBe(true);
    expect(rec.dispatched).toHaveLength(0);
  });

  it("dispatches on approve, and answers 409 with an explanation when a command does not apply", async () => {
    const early = await command("decide-approval", { command: "approve", actor: "alice" });
    expect(early.status).toBe(409);
    expect(early.headers.get("content-type")).toBe("application/problem+json");
    expect(((await early.json()) as { detail: string }).detail).toMatch(/approve/);
    await alert("decide-approval", "primary", "firing");
    await rec.fireAlarm("decide-approval", T0 + 30_000);
    const ok = await command("decide-approval", { command: "approve", actor: "alice", reason: "gw-a dead" });
    expect(ok.status).toBe(200);
    await env.TARGETS.getByName("decide-approval").settle();
    expect(rec.dispatched).toEqual([expect.objectContaining({ id: "decide-approval:1", to: "secondary" })]);
    const events = (await view("decide-approval")).lastEvents ?? [];
    expect(events.find((e) => e.type === "command.accepted")?.detail).toMatchObject({ command: "approve" });
  });

  it("re-dispatches the same id when no report arrives within actionTimeoutSeconds, then fails", async () => {
    await command("decide-auto", { command: "failover", actor: "bob", reason: "drill by hand" });
    await env.TARGETS.getByName("decide-auto").settle();
    expect(rec.dispatched.map((d) => d.id)).toEqual(["decide-auto:1"]);
    let t = T0;
    for (let i = 0; i < 5 && (await view("decide-auto")).phase === "executing"; i++) {
      t += 61_000;
      await rec.fireAlarm("decide-auto", t);
    }
    expect(new Set(rec.dispatched.map((d) => d.id))).toEqual(new Set(["decide-auto:1"]));
    expect(rec.dispatched.length).toBe(3); // first dispatch + dispatchRetries (2) re-dispatches
    expect((await view("decide-auto")).phase).toBe("failed");
  });

  it("records a failed delivery and retries it by alarm (agent down at dispatch time)", async () => {
    rec.nextAttempt = { ok: false, error: "agent unreachable: connection refused" };
    await command("decide-auto", { command: "failover", actor: "bob" });
    await env.TARGETS.getByName("decide-auto").settle();
    expect(rec.dispatched).toHaveLength(1);
    rec.nextAttempt = { ok: true, detail: "published to QStash as msg_1 (deduplicated)" };
    await rec.fireAlarm("decide-auto", T0 + 5_000);
    expect(rec.dispatched.map((d) => d.id)).toEqual(["decide-auto:1", "decide-auto:1"]);
    const delivered = (await view("decide-auto")).lastEvents?.find((e) => e.type === "action.delivered");
    // How it was delivered is on the record: a deduplicated publish is not mistaken for a fresh one.
    expect(delivered?.detail).toMatchObject({
      id: "decide-auto:1",
      detail: "published to QStash as msg_1 (deduplicated)",
    });
  });

  it("fails at once when the agent refuses the action for good (a 4xx), instead of retrying it", async () => {
    rec.nextAttempt = { ok: false, error: "agent refused the action (404): unknown target", final: true };
    await command("decide-auto", { command: "failover", actor: "bob" });
    await env.TARGETS.getByName("decide-auto").settle();
    const v = await view("decide-auto");
    expect(v.phase).toBe("failed");
    expect(v.action).toMatchObject({
      status: "failed",
      error: { code: "dispatch-failed", message: "agent refused the action (404): unknown target" },
    });
    expect(await rec.fireAlarm("decide-auto", T0 + 600_000)).toBe(false);
    expect(rec.dispatched).toHaveLength(1);
  });

  it("refuses unsigned or tampered reports before parsing, and ignores reports for other actions", async () => {
    const bogus = {
      actionId: "decide-auto:9",
      target: "decide-auto",
      status: "succeeded",
      at: new Date(T0).toISOString(),
    };
    const unsigned = await exports.default.fetch("http://w/v1/agent/reports", { method: "POST", body: "{not json" });
    expect(unsigned.status).toBe(401);
    expect(await report(bogus as ActionReport, "wrong-secret").then((r) => r.status)).toBe(401);
    const ignored = await report(bogus as ActionReport);
    expect(await ignored.json()).toMatchObject({ accepted: false });
    const types = (await view("decide-auto")).lastEvents?.map((e) => e.type) ?? [];
    expect(types).toContain("report.ignored");
    const invalid = await report({ actionId: "x" } as unknown as ActionReport);
    expect(invalid.status).toBe(400);
  });

  it("says 'agent transport not configured' when TURNOUT_AGENT_SECRET is missing, never dropping silently", async () => {
    const parsed = validateWorkerConfig(testConfig);
    if (!parsed.ok) throw new Error("test config invalid");
    const attempt = await transportDispatcher({ ...env, TURNOUT_AGENT_SECRET: undefined }, parsed.value).dispatch({
      id: "decide-auto:1",
      target: "decide-auto",
      kind: "failover",
      from: "primary",
      to: "secondary",
      dryRun: false,
      force: false,
      reason: "",
      issuedAt: new Date(T0).toISOString(),
    });
    expect(attempt).toEqual({ ok: false, error: expect.stringMatching(/agent transport not configured/) });
  });
});

describe("eviction", () => {
  /** One scenario through every phase; `evict` runs between inputs. */
  async function scenario(target: string, evict: () => Promise<void>) {
    const stub = env.TARGETS.getByName(target);
    const seen: string[] = [];
    const note = async () => {
      seen.push((await view(target)).phase);
      await evict();
    };
    await alert(target, "primary", "firing");
    await note(); // pending
    await rec.fireAlarm(target, T0 + 30_000);
    await note(); // awaiting_approval
    await command(target, { command: "approve", actor: "carol" });
    await stub.settle();
    await note(); // executing
    const req = rec.dispatched.at(-1) as ActionRequest;
    await report({ ...succeeded(req), status: "failed", error: { code: "x", message: "boom" } });
    await note(); // failed
    await command(target, { command: "retry", actor: "carol" });
    await stub.settle();
    await note(); // executing again
    await report(succeeded(rec.dispatched.at(-1) as ActionRequest));
    const final = await view(target);
    return { phases: seen, dispatched: rec.dispatched.map((d) => `${d.id}:${d.kind}:${d.to}`), final };
  }

  it("changes no decision when the object is evicted in every phase", async () => {
    const plain = await scenario("decide-evict-a", async () => {});
    rec.dispatched = [];
    rec.clock = T0;
    const stub = env.TARGETS.getByName("decide-evict-b");
    const evicted = await scenario("decide-evict-b", async () => {
      await evictDurableObject(stub);
    });
    expect(plain.phases).toEqual(["pending", "awaiting_approval", "executing", "failed", "executing"]);
    expect(evicted.phases).toEqual(plain.phases);
    expect(evicted.dispatched.map((d) => d.replace("evict-b", "evict-a"))).toEqual(plain.dispatched);
    expect(plain.final).toMatchObject({ activeSide: "secondary", phase: "steady" });
    expect(evicted.final).toMatchObject({ activeSide: "secondary", phase: "steady" });
  });
});
