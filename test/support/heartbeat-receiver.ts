/**
 * A stand-in for the worker's `POST /v1/agent/heartbeats` over real HTTP (design §11.1): it picks
 * the key by the `Turnout-Agent` header, verifies the Turnout-Signature before parsing (401 for an
 * unknown name or a wrong key, as the worker does), records every accepted heartbeat and answers
 * `{serves}`. `answer` can be switched to make it refuse (401) or fail (503) the next heartbeats.
 */
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { AGENT_HEADER, DEFAULT_AGENT, type Heartbeat, HeartbeatSchema } from "../../shared/protocol.ts";
import { SIGNATURE_HEADER, verify } from "../../shared/signature.ts";
import { readText } from "./request-text.ts";

export interface HeartbeatReceiver {
  /** The heartbeat URL (`…/v1/agent/heartbeats`). */
  url: string;
  /** Accepted heartbeats, with their signed `t`, in arrival order. */
  accepted: { heartbeat: Heartbeat; agent: string; t: number }[];
  /** Every attempt's status, in order. */
  statuses: number[];
  /** How the next heartbeats are answered: `accept` (200 with `serves`), `refuse` (401), `fail` (503). */
  answer: "accept" | "refuse" | "fail";
  /** The `serves` of a 200 answer. */
  serves: Record<string, string[]>;
  close(): Promise<void>;
}

/**
 * Starts a receiver on 127.0.0.1 knowing `keys` (`{"<agent>": "<secret>"}`); `now` (ms) is the
 * clock signatures are checked against: the agents' fake clock in tests that drive one.
 */
export async function startHeartbeatReceiver(
  keys: Record<string, string>,
  now: () => number = Date.now,
): Promise<HeartbeatReceiver> {
  const state: Omit<HeartbeatReceiver, "url" | "close"> = { accepted: [], statuses: [], answer: "accept", serves: {} };
  const reply = (res: ServerResponse, status: number, body: unknown) => {
    state.statuses.push(status);
    res.writeHead(status, { "content-type": status === 200 ? "application/json" : "application/problem+json" });
    res.end(JSON.stringify(body));
  };
  const server: Server = createServer(async (req, res) => {
    const body = await readText(req);
    if (state.answer === "fail") return reply(res, 503, { status: 503 });
    const named = req.headers[AGENT_HEADER.toLowerCase()];
    const agent = typeof named === "string" ? named : DEFAULT_AGENT;
    const key = Object.hasOwn(keys, agent) ? keys[agent] : undefined;
    const header = req.headers[SIGNATURE_HEADER.toLowerCase()];
    const check = key
      ? await verify([key], typeof header === "string" ? header : undefined, body, now() / 1000)
      : undefined;
    if (state.answer === "refuse" || !check?.ok)
      return reply(res, 401, { status: 401, detail: "unknown agent or key" });
    const heartbeat = HeartbeatSchema.parse(JSON.parse(body));
    if (heartbeat.agent !== agent) return reply(res, 401, { status: 401, detail: "names another agent" });
    state.accepted.push({ heartbeat, agent, t: check.timestamp });
    reply(res, 200, { serves: state.serves });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/v1/agent/heartbeats`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
