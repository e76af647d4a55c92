/**
 * Rotating TURNOUT_AGENT_SECRET without downtime (docs/operations.md): both sides verify with
 * [current, next] and sign with current. Each phase of the documented order runs a full round
 * trip through the real code on both sides: the worker signs an ActionRequest with
 * `dispatchDirect` and the secrets `agentSecrets(env)` (shared/secrets.ts; the same rule as
 * worker/agents/dispatcher.ts, which the node typecheck cannot import because of its workerd types);
 * the agent, started by `startAgent` (agent/main.ts) from its environment, verifies it, runs it
 * and signs its report; the worker's `verifyAgentReport` checks that report with the same list.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InMemoryActionStore } from "../../agent/action-store.ts";
import { alwaysLeader } from "../../agent/leadership.ts";
import { silentLogger } from "../../agent/log.ts";
import { type RunningAgent, startAgent } from "../../agent/main.ts";
import { executorRegistry } from "../../agent/runner.ts";
import { type FakeKubeApi, startFakeKubeApi } from "../../agent/sandbox/fake-kube-api.ts";
import { ActionRequestSchema } from "../../shared/protocol.ts";
import { agentSecrets } from "../../shared/secrets.ts";
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";

import { type DispatchOutcome, dispatchDirect, verifyAgentReport } from "../../worker/agents/transport.ts";
import { actionRequest, countingExecutor, testAgentConfig } from "../support/test-executors.ts";

/** The two secrets' environment variables, as `wrangler secret put` and the agent's Secret set them. */
interface SecretEnv {
  TURNOUT_AGENT_SECRET?: string;
  TURNOUT_AGENT_SECRET_NEXT?: string;
}

const OLD = "old-secret-aaaaaaaaaaaaaaaaaaaaaaaa";
const NEW = "new-secret-bbbbbbbbbbbbbbbbbbbbbbbb";

/** One report delivery as the worker's /v1/agent/reports saw it. */
interface Delivery {
  actionId: string;
  status: number;
}

let kube: FakeKubeApi;
let workerReports: Server;
let reportUrl: string;
let workerEnv: SecretEnv = {};
const deliveries: Delivery[] = [];
const waiters: { id: string; resolve: (d: Delivery) => void }[] = [];
let agent: RunningAgent | undefined;
let epoch = 0;

beforeAll(async () => {
  kube = await startFakeKubeApi({ namespaces: ["turnout"] });
  // The worker's report endpoint: verifyAgentReport with the worker's current secrets.
  workerReports = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
      void verifyAgentReport(raw, headers, agentSecrets(workerEnv), Date.now()).then((v) => {
        // Bookkeeping only: which action this delivery was about (the worker would not parse it).
        const actionId = String((JSON.parse(raw) as { actionId?: unknown }).actionId);
        const d = { actionId, status: v.ok ? 200 : v.status };
        deliveries.push(d);
        for (const w of waiters.splice(0)) {
          if (w.id === actionId) w.resolve(d);
          else waiters.push(w);
        }
        res.writeHead(d.status).end();
      });
    });
  });
  await new Promise<void>((resolve) => workerReports.listen(0, "127.0.0.1", () => resolve()));
  reportUrl = `http://127.0.0.1:${(workerReports.address() as AddressInfo).port}/v1/agent/reports`;
});

afterAll(async () => {
  await agent?.stop();
  await new Promise<void>((resolve) => workerReports.close(() => resolve()));
  await kube.close();
});

/** (Re)starts the agent with these environment variables, as a rollout restart does. */
async function deployAgent(env: SecretEnv): Promise<void> {
  await agent?.stop();
  agent = await startAgent({
    config: testAgentConfig(["app"], reportUrl),
    mode: "kubeconfig",
    env: { ...env },
    log: silentLogger,
    kubeConfig: kube.kubeConfig(),
    executors: executorRegistry(countingExecutor({ steps: ["one"] }).executor),
    store: new InMemoryActionStore(),
    leadership: alwaysLeader,
    shutdownGraceMs: 0,
  });
}

/** The first report delivery for `id`, accepted or refused by the worker. */
function firstDelivery(id: string): Promise<Delivery> {
  const seen = deliveries.find((d) => d.actionId === id);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve) => waiters.push({ id, resolve }));
}

/** Worker → agent action, then agent → worker report; what each receiver answered. */
async function roundTrip(): Promise<{ action: DispatchOutcome["kind"]; report: number | undefined }> {
  epoch += 1;
  const request = ActionRequestSchema.parse(actionRequest("app", epoch, { issuedAt: new Date().toISOString() }));
  const url = agent?.url ?? "";
  const outcome = await dispatchDirect(request, { agentUrl: url, secrets: agentSecrets(workerEnv) });
  if (outcome.kind !== "accepted") return { action: outcome.kind, report: undefined };
  return { action: outcome.kind, report: (await firstDelivery(request.id)).status };
}

/** A request signed with exactly this secret, straight to the agent. */
async function signedBy(secret: string): Promise<number> {
  epoch += 1;
  const body = JSON.stringify(actionRequest("app", epoch, { issuedAt: new Date().toISOString() }));
  const res = await fetch(`${agent?.url}/v1/actions`, {
    method: "POST",
    headers: { "content-type": "application/json", [SIGNATURE_HEADER]: await sign(secret, body, Date.now() / 1000) },
    body,
  });
  await res.body?.cancel();
  return res.status;
}

const works = { action: "accepted", report: 200 };

describe("rotating TURNOUT_AGENT_SECRET in the documented order", () => {
  it("keeps both directions working at every step, accepts either secret mid-rotation, and refuses the old one at the end", async () => {
    // 0. Steady state: one secret on both sides.
    workerEnv = { TURNOUT_AGENT_SECRET: OLD };
    await deployAgent({ TURNOUT_AGENT_SECRET: OLD });
    expect(await roundTrip()).toEqual(works);
    expect(await signedBy(NEW)).toBe(401);

    // 1. Agent: add the new secret as TURNOUT_AGENT_SECRET_NEXT (verifies both, still signs with the old).
    await deployAgent({ TURNOUT_AGENT_SECRET: OLD, TURNOUT_AGENT_SECRET_NEXT: NEW });
    expect(await roundTrip()).toEqual(works);
    expect(await signedBy(OLD)).toBe(202);
    expect(await signedBy(NEW)).toBe(202);

    // 2. Worker: `wrangler secret put TURNOUT_AGENT_SECRET_NEXT` (the new one).
    workerEnv = { TURNOUT_AGENT_SECRET: OLD, TURNOUT_AGENT_SECRET_NEXT: NEW };
    expect(await roundTrip()).toEqual(works);

    // 3. Worker: promote (current = new, next = old): it signs with the new one, which the agent accepts.
    workerEnv = { TURNOUT_AGENT_SECRET: NEW, TURNOUT_AGENT_SECRET_NEXT: OLD };
    expect(await roundTrip()).toEqual(works);

    // 4. Agent: promote (current = new, next = old): its reports are signed with the new one.
    await deployAgent({ TURNOUT_AGENT_SECRET: NEW, TURNOUT_AGENT_SECRET_NEXT: OLD });
    expect(await roundTrip()).toEqual(works);

    // 5. Both: drop TURNOUT_AGENT_SECRET_NEXT. The old secret is now refused everywhere.
    workerEnv = { TURNOUT_AGENT_SECRET: NEW };
    await deployAgent({ TURNOUT_AGENT_SECRET: NEW });
    expect(await roundTrip()).toEqual(works);
    expect(await signedBy(NEW)).toBe(202);
    expect(await signedBy(OLD)).toBe(401);
    const oldReport = JSON.stringify({
      actionId: "app:1",
      target: "app",
      status: "succeeded",
      at: new Date().toISOString(),
    });
    const headers = new Headers({ [SIGNATURE_HEADER]: await sign(OLD, oldReport, Date.now() / 1000) });
    expect(await verifyAgentReport(oldReport, headers, agentSecrets(workerEnv), Date.now())).toMatchObject({
      ok: false,
      status: 401,
      reason: "mismatch",
    });
  });

  it("breaks when a side is promoted before the other accepts the new secret (why the order matters)", async () => {
    workerEnv = { TURNOUT_AGENT_SECRET: OLD };
    await deployAgent({ TURNOUT_AGENT_SECRET: OLD });
    // The worker switches first, with no NEXT on the agent: every action is refused.
    workerEnv = { TURNOUT_AGENT_SECRET: NEW };
    expect(await roundTrip()).toMatchObject({ action: "fatal", report: undefined });
    // The agent switches first, with no NEXT on the worker: its reports are refused (and re-sent).
    workerEnv = { TURNOUT_AGENT_SECRET: OLD, TURNOUT_AGENT_SECRET_NEXT: NEW };
    await deployAgent({ TURNOUT_AGENT_SECRET: NEW, TURNOUT_AGENT_SECRET_NEXT: OLD });
    workerEnv = { TURNOUT_AGENT_SECRET: OLD };
    expect(await roundTrip()).toEqual({ action: "accepted", report: 401 });
  });
});
