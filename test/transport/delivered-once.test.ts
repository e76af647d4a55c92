import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ActionRequestSchema } from "../../shared/protocol.ts";
import {
  dispatchDirect,
  dispatchQstash,
  QSTASH_FAILURE_PATH,
  verifyQstashFailureCallback,
} from "../../worker/agents/transport.ts";
import { type FakeQstash, startFakeQstash } from "../support/fake-qstash.ts";
import { type ReportReceiver, startReportReceiver } from "../support/report-receiver.ts";
import { readText } from "../support/request-text.ts";
import {
  actionRequest,
  countingExecutor,
  startTestAgent,
  stubLeadership,
  type TestAgent,
} from "../support/test-executors.ts";

const SECRET = "once-secret";
const TOKEN = "qstash-token";
let receiver: ReportReceiver;
let qstash: FakeQstash;
let agent: TestAgent;
let worker: Server;
let workerUrl: string;
const callbacks: { body: string; headers: Headers }[] = [];
const counting = countingExecutor({ steps: ["a", "b", "c"] });

beforeAll(async () => {
  receiver = await startReportReceiver(SECRET);
  qstash = await startFakeQstash({ token: TOKEN });
  agent = await startTestAgent({
    targets: ["direct", "queued", "flow", "down"],
    reportUrl: receiver.url,
    secret: SECRET,
    executor: counting.executor,
    qstash: qstash.keys(),
  });
  // Stands in for the worker's failure-callback route.
  worker = createServer(async (req, res) => {
    const body = await readText(req);
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
    callbacks.push({ body, headers });
    res.writeHead(200).end();
  });
  await new Promise<void>((r) => worker.listen(0, "127.0.0.1", r));
  workerUrl = `http://127.0.0.1:${(worker.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await agent.close();
  await qstash.close();
  await receiver.close();
  await new Promise<void>((r) => worker.close(() => r()));
});

const req = (target: string, epoch: number) => ActionRequestSchema.parse(actionRequest(target, epoch));
const runsOf = (id: string) => counting.calls.filter((c) => c.action === id).length;

describe("the same action delivered three times executes once", () => {
  it("direct: accepted, then duplicate (with the current report) twice", async () => {
    const opts = { agentUrl: agent.url, secrets: [SECRET] };
    const outcomes = [];
    for (let i = 0; i < 3; i++) outcomes.push(await dispatchDirect(req("direct", 1), opts));
    expect(outcomes.map((o) => o.kind)).toEqual(["accepted", "duplicate", "duplicate"]);
    const last = outcomes[2];
    expect(last?.kind === "duplicate" && last.report?.actionId).toBe("direct:1");
    await agent.runner.idle();
    expect(runsOf("direct:1")).toBe(3); // three steps, each once
    expect(await dispatchDirect(req("direct", 1), opts)).toMatchObject({
      kind: "duplicate",
      report: { status: "succeeded", activeSide: "secondary" },
    });
    expect(runsOf("direct:1")).toBe(3);
  });

  it("through QStash: the second and third publishes are deduplicated by action id", async () => {
    const opts = {
      token: TOKEN,
      baseUrl: qstash.baseUrl,
      agentUrl: agent.url,
      workerUrl,
      retries: 2,
      secrets: [SECRET],
    };
    const outcomes = [];
    for (let i = 0; i < 3; i++) outcomes.push(await dispatchQstash(req("queued", 1), opts));
    expect(outcomes.map((o) => o.kind === "published" && o.deduplicated)).toEqual([false, true, true]);
    await qstash.idle();
    await agent.runner.idle();
    const m = qstash.messages.find((x) => x.body.includes('"queued:1"'));
    expect(m?.publishHeaders).toMatchObject({
      "upstash-deduplication-id": "queued:1",
      "upstash-flow-control-key": "queued",
      "upstash-flow-control-value": "parallelism=1",
      "upstash-retries": "2",
      "upstash-failure-callback": `${workerUrl}${QSTASH_FAILURE_PATH}`,
    });
    expect(m?.publishHeaders["upstash-forward-turnout-signature"]).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(qstash.attempts.filter((a) => a.messageId === m?.messageId).map((a) => a.status)).toEqual([202]);
    expect(runsOf("queued:1")).toBe(3);
  });

  it("through QStash after its dedupe window: three deliveries, still one execution (the agent's own idempotency)", async () => {
    const shortWindow = await startFakeQstash({
      token: TOKEN,
      dedupWindowMs: 0,
      currentSigningKey: qstash.keys().current,
      nextSigningKey: qstash.keys().next,
    });
    try {
      const opts = {
        token: TOKEN,
        baseUrl: shortWindow.baseUrl,
        agentUrl: agent.url,
        workerUrl,
        retries: 0,
        secrets: [SECRET],
      };
      for (let i = 0; i < 3; i++) {
        expect(await dispatchQstash(req("queued", 2), opts)).toMatchObject({ kind: "published", deduplicated: false });
        await shortWindow.idle();
      }
      expect(shortWindow.attempts.filter((a) => a.kind === "message").map((a) => a.status)).toEqual([202, 200, 200]);
      await agent.runner.idle();
      expect(runsOf("queued:2")).toBe(3);
    } finally {
      await shortWindow.close();
    }
  });
});

describe("QStash delivery behaviour", () => {
  it("holds parallelism 1 per flow-control key (the agent answers 409 to the ones that overlap its running action)", async () => {
    const opts = {
      token: TOKEN,
      baseUrl: qstash.baseUrl,
      agentUrl: agent.url,
      workerUrl,
      retries: 0,
      secrets: [SECRET],
    };
    await Promise.all([1, 2, 3].map((epoch) => dispatchQstash(req("flow", epoch), opts)));
    await qstash.idle();
    expect(qstash.maxInFlight.get("flow")).toBe(1);
    await agent.runner.idle();
  });

  it("retries an unreachable agent, then posts a signed failure callback the worker can verify", async () => {
    const opts = {
      token: TOKEN,
      baseUrl: qstash.baseUrl,
      agentUrl: "http://127.0.0.1:1",
      workerUrl,
      retries: 2,
      secrets: [SECRET],
    };
    const published = await dispatchQstash(req("down", 1), opts);
    expect(published.kind).toBe("published");
    await qstash.idle();
    const id = published.kind === "published" ? published.messageId : "";
    expect(qstash.attempts.filter((a) => a.messageId === id).map((a) => a.retried)).toEqual([0, 1, 2]);
    const mine = callbacks.filter((c) => c.body.includes(id));
    expect(mine).toHaveLength(1);
    const cb = mine[0];
    if (!cb) throw new Error("no callback");
    const verified = await verifyQstashFailureCallback(
      cb.body,
      cb.headers,
      qstash.keys(),
      `${workerUrl}${QSTASH_FAILURE_PATH}`,
    );
    expect(verified).toMatchObject({
      ok: true,
      request: { id: "down:1", target: "down" },
      callback: { retried: 2, maxRetries: 2, sourceMessageId: id },
    });
  });

  it("classifies a bad QStash token as fatal and an unreachable QStash as retryable", async () => {
    const base = { agentUrl: agent.url, workerUrl, retries: 0, secrets: [SECRET] };
    expect(await dispatchQstash(req("queued", 9), { ...base, token: "wrong", baseUrl: qstash.baseUrl })).toMatchObject({
      kind: "fatal",
      status: 401,
    });
    expect(
      await dispatchQstash(req("queued", 9), { ...base, token: TOKEN, baseUrl: "http://127.0.0.1:1" }),
    ).toMatchObject({
      kind: "retryable",
    });
  });

  it("classifies direct answers: unreachable agent retryable, bad signature fatal", async () => {
    expect(await dispatchDirect(req("direct", 5), { agentUrl: "http://127.0.0.1:1", secrets: [SECRET] })).toMatchObject(
      {
        kind: "retryable",
      },
    );
    expect(await dispatchDirect(req("direct", 5), { agentUrl: agent.url, secrets: ["wrong"] })).toMatchObject({
      kind: "fatal",
      status: 401,
    });
  });

  it("an agent that takes the request and never answers is retryable once timeoutMs has passed, naming the wait", async () => {
    const held = new Set<ServerResponse>();
    const silent = createServer((_req, res) => {
      held.add(res); // read nothing back: no status line, ever
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      const outcome = await dispatchDirect(req("direct", 6), {
        agentUrl: `http://127.0.0.1:${port}`,
        secrets: [SECRET],
        timeoutMs: 50,
      });
      expect(outcome).toEqual({
        kind: "retryable",
        detail: "agent unreachable: no answer from the agent within 50 ms",
      });
      expect(held.size).toBe(1);
    } finally {
      for (const res of held) res.destroy();
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});

describe("QStash and a follower agent", () => {
  it("a delivery that reaches a standby replica (503 + Retry-After) is retried, honouring Retry-After", async () => {
    const standbyExec = countingExecutor({ steps: ["one"] });
    const lease = stubLeadership(false, "replica-a");
    const standby = await startTestAgent({
      targets: ["ha"],
      reportUrl: receiver.url,
      secret: SECRET,
      executor: standbyExec.executor,
      qstash: qstash.keys(),
      leadership: lease,
    });
    try {
      // The replica becomes leader after the first refusal, as a Lease takeover would.
      const backoff = (retried: number) => {
        if (retried === 1) lease.set(true);
        return 0;
      };
      const q = await startFakeQstash({
        token: TOKEN,
        currentSigningKey: qstash.keys().current,
        nextSigningKey: qstash.keys().next,
        backoff,
      });
      try {
        const opts = {
          token: TOKEN,
          baseUrl: q.baseUrl,
          agentUrl: standby.url,
          workerUrl,
          retries: 3,
          secrets: [SECRET],
        };
        expect((await dispatchQstash(req("ha", 1), opts)).kind).toBe("published");
        await q.idle();
        expect(q.attempts.filter((a) => a.kind === "message").map((a) => a.status)).toEqual([503, 202]);
        expect(q.backoffs).toEqual([[1, 15]]);
        await standby.runner.idle();
        expect(standbyExec.count()).toBe(1);
      } finally {
        await q.close();
      }
    } finally {
      await standby.close();
    }
  });
});
