/**
 * What the plan tests share in workerd: reports of a plan whose approval step waits, and a fake
 * agent for `POST <agent>/v1/actions/:id/approvals` (globalThis.fetch stubbed; the object calls
 * it through fetchWithin). Undo the stub with `vi.restoreAllMocks()`.
 */
import { vi } from "vitest";
import type { ActionReport, ActionRequest, StepReport } from "../../../shared/protocol.ts";

/** One request the object sent to the fake agent, as it went on the wire. */
export interface AgentCall {
  url: string;
  method: string;
  headers: Headers;
  body: string;
}

/** Stubs fetch: every request is recorded and answered by `answer` (default 200 `{approved: true}`). */
export function fakeApprovalsAgent(answer: (call: AgentCall) => Response | Promise<Response> = () => approvedAnswer()) {
  const calls: AgentCall[] = [];
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const req = new Request(input, init);
    const call = { url: req.url, method: req.method, headers: req.headers, body: await req.text() };
    calls.push(call);
    return answer(call);
  });
  return calls;
}

export const approvedAnswer = () =>
  new Response(JSON.stringify({ approved: true }), { status: 200, headers: { "content-type": "application/json" } });

export const alreadyApprovedAnswer = () =>
  new Response(JSON.stringify({ title: "Conflict", status: 409, detail: "step already approved" }), {
    status: 409,
    headers: { "content-type": "application/problem+json" },
  });

/** The steps of a plan waiting at its approval step `approve-shift`, after a parallel group. */
export function waitingSteps(atMs: number, deadlineMs: number): StepReport[] {
  const iso = (ms: number) => new Date(ms).toISOString();
  return [
    {
      name: "scale-standby",
      status: "succeeded",
      group: "prepare",
      startedAt: iso(atMs - 4000),
      finishedAt: iso(atMs - 2000),
    },
    {
      name: "warm-cache",
      status: "succeeded",
      group: "prepare",
      startedAt: iso(atMs - 4000),
      finishedAt: iso(atMs - 1000),
    },
    {
      name: "approve-shift",
      status: "waiting",
      startedAt: iso(atMs - 1000),
      approval: { message: "Shift the HTTPRoute weights to <secondary>?", deadline: iso(deadlineMs) },
    },
    { name: "shift-weights", status: "pending" },
  ];
}

/** A `running` report of `req` with `steps` at `atMs`. */
export function runningReport(req: ActionRequest, atMs: number, steps: StepReport[]): ActionReport {
  return {
    actionId: req.id,
    target: req.target,
    status: "running",
    dryRun: req.dryRun,
    steps,
    at: new Date(atMs).toISOString(),
  };
}
