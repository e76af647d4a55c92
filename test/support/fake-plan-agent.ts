/**
 * A fake plan agent over real HTTP (for tests that start the real worker): it accepts signed
 * `POST /v1/actions` (202, then 200 for the same id) and signed `POST /v1/actions/:id/approvals`
 * (200, then 409 for the same step, as the real agent answers), checking every Turnout-Signature,
 * and `report()` posts signed reports to the worker as the agent does at each step change.
 */
import { createServer, type Server } from "node:http";
import { expect } from "vitest";
import {
  type ActionReport,
  type ActionRequest,
  ActionRequestSchema,
  type ApprovalRequest,
  ApprovalRequestSchema,
} from "../../shared/protocol.ts";
import { sign, verify } from "../../shared/signature.ts";
import { readText } from "./request-text.ts";

/** A fake agent: accepts actions (202) and approvals (200, then 409 for the same step). */
export interface FakePlanAgent {
  url: string;
  actions: ActionRequest[];
  approvals: ApprovalRequest[];
  /** Resolves with the next request of this kind. */
  next(kind: "action" | "approval"): Promise<unknown>;
  stop(): Promise<void>;
}

export async function startFakePlanAgent(secret: string): Promise<FakePlanAgent> {
  const actions: ActionRequest[] = [];
  const approvals: ApprovalRequest[] = [];
  const waiters: { kind: "action" | "approval"; resolve: (r: unknown) => void }[] = [];
  const arrived = (kind: "action" | "approval", r: unknown) => {
    const i = waiters.findIndex((w) => w.kind === kind);
    if (i >= 0) waiters.splice(i, 1)[0]?.resolve(r);
  };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const raw = await readText(req);
      const header = req.headers["turnout-signature"];
      const check = await verify([secret], typeof header === "string" ? header : null, raw, Date.now() / 1000);
      if (req.method !== "POST" || !check.ok) {
        res.writeHead(req.method === "POST" ? 401 : 404).end();
        return;
      }
      if (req.url === "/v1/actions") {
        const request = ActionRequestSchema.parse(JSON.parse(raw));
        const duplicate = actions.some((r) => r.id === request.id);
        if (!duplicate) {
          actions.push(request);
          arrived("action", request);
        }
        res.writeHead(duplicate ? 200 : 202, { "content-type": "application/json" });
        res.end(JSON.stringify({ id: request.id, status: "accepted" }));
        return;
      }
      const m = /^\/v1\/actions\/([^/]+)\/approvals$/.exec(req.url ?? "");
      const approval = ApprovalRequestSchema.parse(JSON.parse(raw));
      if (!m || m[1] !== approval.actionId) {
        res.writeHead(400).end();
        return;
      }
      const again = approvals.some((x) => x.actionId === approval.actionId && x.step === approval.step);
      if (!again) {
        approvals.push(approval);
        arrived("approval", approval);
      }
      res.writeHead(again ? 409 : 200, { "content-type": "application/json" });
      res.end(JSON.stringify(again ? { detail: "already approved" } : { approved: true }));
    })().catch(() => {
      res.writeHead(400).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    actions,
    approvals,
    next: (kind) =>
      Promise.race([
        new Promise((resolve) => waiters.push({ kind, resolve })),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`no ${kind} reached the fake agent in 15 s`)), 15_000),
        ),
      ]),
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Posts a signed report of `request`, as the agent does at each step change. */
export async function report(
  secret: string,
  workerUrl: string,
  request: ActionRequest,
  status: ActionReport["status"],
  steps: ActionReport["steps"],
): Promise<void> {
  const now = Date.now();
  const body: ActionReport = {
    actionId: request.id,
    target: request.target,
    status,
    ...(status === "succeeded" ? { activeSide: request.to } : {}),
    dryRun: request.dryRun,
    steps,
    at: new Date(now).toISOString(),
  };
  const raw = JSON.stringify(body);
  const res = await fetch(`${workerUrl}/v1/agent/reports`, {
    method: "POST",
    headers: { "content-type": "application/json", "Turnout-Signature": await sign(secret, raw, now / 1000) },
    body: raw,
  });
  expect(res.status).toBe(200);
}
