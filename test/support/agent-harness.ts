/**
 * The agent the transport tests talk to: a test agent that reports to a report receiver and
 * accepts deliveries from a fake QStash, all three on 127.0.0.1 with the same secret, and the two
 * ways of reaching it that the auth tests use (now in seconds for signatures, a POST of an action).
 */
import { afterAll, beforeAll } from "vitest";
import { type FakeQstash, startFakeQstash } from "./fake-qstash.ts";
import { type ReportReceiver, startReportReceiver } from "./report-receiver.ts";
import { startTestAgent, type TestAgent, type TestAgentOptions } from "./test-executors.ts";

/** The wall clock in whole seconds, as Turnout-Signature timestamps are. */
export const nowS = () => Math.floor(Date.now() / 1000);

export interface AgentHarness {
  receiver: ReportReceiver;
  qstash: FakeQstash;
  agent: TestAgent;
  /** Closes the agent, then the fake QStash and the receiver. */
  close(): Promise<void>;
}

/** Starts a receiver, a fake QStash (token `qstash-token`) and an agent using both. */
export async function startAgentHarness(
  options: Omit<TestAgentOptions, "reportUrl" | "qstash">,
): Promise<AgentHarness> {
  const receiver = await startReportReceiver(options.secret);
  const qstash = await startFakeQstash({ token: "qstash-token" });
  const agent = await startTestAgent({ ...options, reportUrl: receiver.url, qstash: qstash.keys() });
  return {
    receiver,
    qstash,
    agent,
    async close() {
      await agent.close();
      await qstash.close();
      await receiver.close();
    },
  };
}

/**
 * The harness of a test file: started before its tests (before the file's own beforeAll hooks
 * registered later) and closed after them. Its parts throw when read before the start.
 */
export function useAgentHarness(options: Omit<TestAgentOptions, "reportUrl" | "qstash">): Omit<AgentHarness, "close"> {
  let started: AgentHarness | undefined;
  beforeAll(async () => {
    started = await startAgentHarness(options);
  });
  afterAll(() => started?.close());
  const running = (): AgentHarness => {
    if (!started) throw new Error("the agent harness is not started yet (read it inside a test or hook)");
    return started;
  };
  return {
    get receiver() {
      return running().receiver;
    },
    get qstash() {
      return running().qstash;
    },
    get agent() {
      return running().agent;
    },
  };
}

/**
 * Publishes `body` to `url` through the fake QStash (no retries), `forwarded` as the
 * Turnout-Signature it forwards; the status the destination answered its delivery with.
 */
export async function publishThrough(
  qstash: FakeQstash,
  url: string,
  body: string,
  forwarded?: string,
): Promise<number | "network-error"> {
  const before = qstash.attempts.length;
  const res = await fetch(`${qstash.baseUrl}/v2/publish/${url}`, {
    method: "POST",
    headers: {
      authorization: "Bearer qstash-token",
      "content-type": "application/json",
      "upstash-retries": "0",
      ...(forwarded ? { "upstash-forward-turnout-signature": forwarded } : {}),
    },
    body,
  });
  if (res.status !== 201) throw new Error(`the fake QStash answered the publish with ${res.status}`);
  await qstash.idle();
  return qstash.attempts.slice(before).find((a) => a.kind === "message")?.status ?? "network-error";
}

/** POSTs `body` as JSON to the agent's `/v1/actions` with `headers`; the answer's status, type and JSON. */
export async function postAction(agentUrl: string, body: string, headers: Record<string, string>) {
  const res = await fetch(`${agentUrl}/v1/actions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  return {
    status: res.status,
    type: res.headers.get("content-type"),
    json: (await res.json()) as Record<string, unknown>,
  };
}
