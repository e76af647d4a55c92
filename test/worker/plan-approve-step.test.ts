/**
 * Approving a plan's approval step through the operator API, in workerd (design §11.2, §11.6):
 * `{"command": "approve", "step"}` forwards a signed `POST <agent>/v1/actions/:id/approvals
 * {actionId, step, by}` to the agent that runs the action, audits `approval.step-approved` with the
 * authenticated identity and answers 200; a second approval is 409 (and never forwarded again),
 * the agent's own 409 counts as done, an unknown or not-waiting step is 409, a viewer is 403, and
 * an approval the agent never got is 503 with nothing recorded.
 */
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type ActionRequest, ApprovalRequestSchema } from "../../shared/protocol.ts";
import { SIGNATURE_HEADER, verify } from "../../shared/signature.ts";
import { TEST_CREDENTIALS } from "./support/bindings.ts";
import { alreadyApprovedAnswer, fakeApprovalsAgent, runningReport, waitingSteps } from "./support/plan-agent.ts";
import { useRecordingObject } from "./support/recording-object.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const rec = useRecordingObject({ start: T0 });
afterEach(() => {
  vi.restoreAllMocks();
});

const OPERATOR = { authorization: `Bearer ${TEST_CREDENTIALS.operator}` };
const VIEWER = { authorization: `Bearer ${TEST_CREDENTIALS.viewer}` };

const command = (target: string, body: Record<string, unknown>, auth: Record<string, string> = OPERATOR) =>
  exports.default.fetch(`http://w/v1/targets/${target}/commands`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

/** A manual failover of `target` whose plan now waits at `approve-shift`. */
async function planWaiting(target: string): Promise<ActionRequest> {
  expect((await command(target, { command: "failover", reason: "primary region lost" })).status).toBe(200);
  const req = rec.dispatched.at(-1);
  if (!req) throw new Error("nothing dispatched");
  rec.clock = T0 + 5000;
  const r = await env.TARGETS.getByName(target).report(
    target,
    runningReport(req, rec.clock, waitingSteps(rec.clock, T0 + 905_000)),
  );
  expect(r.accepted).toBe(true);
  return req;
}

async function events(target: string) {
  return (await env.TARGETS.getByName(target).events(0, 1000)).events;
}

describe("approve a plan step (API)", () => {
  it("forwards a signed approval {actionId, step, by} to the action's agent, audits the identity, answers 200", async () => {
    const calls = fakeApprovalsAgent();
    const req = await planWaiting("plan-a");
    rec.clock = T0 + 20_000;
    const res = await command("plan-a", { command: "approve", step: "approve-shift", reason: "looks right" });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      applied: boolean;
      forwarded: string;
      target: { action: { approvals: unknown[] } };
    };
    expect(body).toMatchObject({ applied: true, forwarded: "approved" });
    expect(body.target.action.approvals).toEqual([
      { step: "approve-shift", by: "operator", at: new Date(T0 + 20_000).toISOString() },
    ]);

    expect(calls).toHaveLength(1);
    const call = calls[0];
    if (!call) throw new Error("no call");
    expect(call.method).toBe("POST");
    expect(call.url).toBe(`http://127.0.0.1:8788/v1/actions/${req.id}/approvals`);
    expect(call.headers.get("content-type")).toBe("application/json");
    // Signed over the raw body with the agent's key, at the object's clock.
    const check = await verify(
      [TEST_CREDENTIALS.agentSecret],
      call.headers.get(SIGNATURE_HEADER),
      call.body,
      rec.clock / 1000,
    );
    expect(check).toEqual({ ok: true, timestamp: Math.floor((T0 + 20_000) / 1000) });
    expect((await verify(["another-secret"], call.headers.get(SIGNATURE_HEADER), call.body, rec.clock / 1000)).ok).toBe(
      false,
    );
    // Shaped per the protocol, naming the identity from the credential (never the body).
    expect(ApprovalRequestSchema.parse(JSON.parse(call.body))).toEqual({
      actionId: req.id,
      step: "approve-shift",
      by: "operator",
    });

    const approved = (await events("plan-a")).filter((e) => e.type === "approval.step-approved");
    expect(approved).toMatchObject([{ detail: { id: req.id, step: "approve-shift", by: "operator" } }]);
    expect(rec.notes.some((n) => /step approve-shift of plan-a:1 approved by operator/.test(n.text))).toBe(true);
  });

  it("a second approval of the same step is 409 and is not forwarded again", async () => {
    const calls = fakeApprovalsAgent();
    await planWaiting("plan-a");
    expect((await command("plan-a", { command: "approve", step: "approve-shift" })).status).toBe(200);
    const again = await command(
      "plan-a",
      { command: "approve", step: "approve-shift" },
      { authorization: `Bearer ${TEST_CREDENTIALS.bob}` },
    );
    expect(again.status).toBe(409);
    expect(again.headers.get("content-type")).toBe("application/problem+json");
    expect(((await again.json()) as { detail: string }).detail).toMatch(/already approved by operator/);
    expect(calls).toHaveLength(1);
    expect((await events("plan-a")).filter((e) => e.type === "approval.step-approved")).toHaveLength(1);
  });

  it("the agent's 409 (approved before, e.g. the worker lost its record) counts as done: 200, recorded once", async () => {
    const calls = fakeApprovalsAgent(alreadyApprovedAnswer);
    await planWaiting("plan-b");
    const res = await command("plan-b", { command: "approve", step: "approve-shift" });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ applied: true, forwarded: "already" });
    expect(calls).toHaveLength(1);
    expect((await events("plan-b")).filter((e) => e.type === "approval.step-approved")).toHaveLength(1);
  });

  it("an unknown step and a step that is not waiting are 409 with a clear detail, and nothing is forwarded", async () => {
    const calls = fakeApprovalsAgent();
    await planWaiting("plan-a");
    const unknown = await command("plan-a", { command: "approve", step: "no-such-step" });
    expect(unknown.status).toBe(409);
    expect(((await unknown.json()) as { detail: string }).detail).toBe(
      'approve: plan-a:1 has no step named "no-such-step"',
    );
    const done = await command("plan-a", { command: "approve", step: "scale-standby" });
    expect(done.status).toBe(409);
    expect(((await done.json()) as { detail: string }).detail).toBe(
      'approve: step "scale-standby" of plan-a:1 is succeeded, not waiting for approval',
    );
    const pending = await command("plan-a", { command: "approve", step: "shift-weights" });
    expect(((await pending.json()) as { detail: string }).detail).toMatch(/is pending, not waiting/);
    expect(calls).toHaveLength(0);
    expect((await events("plan-a")).filter((e) => e.type === "command.rejected")).toHaveLength(3);
  });

  it("without a running action a step approval is 409", async () => {
    const calls = fakeApprovalsAgent();
    const res = await command("plan-c", { command: "approve", step: "approve-shift" });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/no action is running \(phase steady\)/);
    expect(calls).toHaveLength(0);
  });

  it("approving needs the operator role: a viewer is 403, no credential 401, and nothing is forwarded", async () => {
    const calls = fakeApprovalsAgent();
    await planWaiting("plan-a");
    const viewer = await command("plan-a", { command: "approve", step: "approve-shift" }, VIEWER);
    expect(viewer.status).toBe(403);
    expect(viewer.headers.get("content-type")).toBe("application/problem+json");
    expect((await command("plan-a", { command: "approve", step: "approve-shift" }, {})).status).toBe(401);
    expect(calls).toHaveLength(0);
  });

  it("an approval the agent never got is 503 with nothing recorded; approving again then succeeds", async () => {
    let up = false;
    const calls = fakeApprovalsAgent(() => {
      if (!up) throw new TypeError("connect ECONNREFUSED 127.0.0.1:8788");
      return new Response(null, { status: 204 });
    });
    await planWaiting("plan-a");
    const down = await command("plan-a", { command: "approve", step: "approve-shift" });
    expect(down.status).toBe(503);
    expect(((await down.json()) as { detail: string }).detail).toMatch(/did not reach the agent.*ECONNREFUSED/);
    const types = (await events("plan-a")).map((e) => e.type);
    expect(types).toContain("approval.forward-failed");
    expect(types).not.toContain("approval.step-approved");
    up = true;
    expect((await command("plan-a", { command: "approve", step: "approve-shift" })).status).toBe(200);
    expect(calls).toHaveLength(2);
  });

  it("names a misplaced step field: 400 application/problem+json", async () => {
    const res = await command("plan-a", { command: "failover", step: "approve-shift" });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    const problem = (await res.json()) as { errors: { path: string }[] };
    expect(problem.errors.map((e) => e.path)).toEqual(["step"]);
    const forced = await command("plan-a", { command: "approve", step: "approve-shift", force: true });
    expect(forced.status).toBe(400);
    expect(((await forced.json()) as { errors: { path: string }[] }).errors.map((e) => e.path)).toEqual(["force"]);
  });
});
