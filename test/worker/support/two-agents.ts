/**
 * A worker config with two agents (design §11.1: `agent-a` serves the primary sides, `agent-b`
 * the secondary ones) and their keys, for the agents-*.test.ts files. Routes read the config from
 * the env a test passes to `app.fetch`; the objects from their `testing.config` seams.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { type WorkerConfig, WorkerConfigSchema } from "../../../shared/config.ts";
import { SIGNATURE_HEADER, sign } from "../../../shared/signature.ts";
import { AgentObject } from "../../../worker/agents/agent-object.ts";
import type { Env } from "../../../worker/env.ts";
import { app } from "../../../worker/http/app.ts";
import { TargetObject } from "../../../worker/target/target-object.ts";

export const KEYS = {
  "agent-a": "agent-a-key-0123456789abcdef0123456789",
  "agent-b": "agent-b-key-0123456789abcdef0123456789",
  "agent-c": "agent-c-key-0123456789abcdef0123456789",
} as const;

const side = (target: string, s: string, agent: string) => ({ matchers: [`target="${target}"`, `side="${s}"`], agent });

/** Two targets served by agent-a (primary) and agent-b (secondary); `one-cluster` by agent-a alone. */
export function twoAgentConfig(edit: (config: WorkerConfig) => void = () => {}): WorkerConfig {
  const raw = {
    agents: {
      "agent-a": { url: "http://127.0.0.1:8788", silentAfterSeconds: 60, mode: "sandbox" },
      "agent-b": { url: "http://127.0.0.1:8789", silentAfterSeconds: 60, mode: "sandbox" },
      "agent-c": { url: "http://127.0.0.1:8790", silentAfterSeconds: 60, mode: "sandbox" },
    },
    targets: {
      "dr-one": {
        sides: { primary: side("dr-one", "primary", "agent-a"), secondary: side("dr-one", "secondary", "agent-b") },
        policy: { holdSeconds: 30 },
      },
      "dr-two": {
        sides: { primary: side("dr-two", "primary", "agent-a"), secondary: side("dr-two", "secondary", "agent-b") },
        policy: { holdSeconds: 30 },
      },
      "one-cluster": {
        sides: {
          primary: side("one-cluster", "primary", "agent-a"),
          secondary: side("one-cluster", "secondary", "agent-a"),
        },
        policy: {},
      },
    },
  };
  const config = WorkerConfigSchema.parse(raw);
  edit(config);
  return config;
}

/** Points both objects' config seams at `config()` (evaluated on every read, so a test can edit it). */
export function useConfig(config: () => WorkerConfig, now?: () => number): void {
  TargetObject.testing = { ...TargetObject.testing, config };
  AgentObject.testing = { config, ...(now ? { now } : {}) };
}

/** The worker's env with the two-agent config and per-agent keys (the legacy default key stays). */
export function agentEnv(config: WorkerConfig): Env {
  return {
    ...(env as unknown as Env),
    TURNOUT_CONFIG: JSON.stringify(config),
    TURNOUT_AGENT_SECRETS: JSON.stringify(KEYS),
  };
}

/** A request through the worker's app with `e` as its env. */
export async function fetchWith(e: Env, request: Request): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await app.fetch(request, e, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

/** A POST signed as `signer` (its key), naming `header` in Turnout-Agent (absent: no header). */
export async function signedAgentPost(
  path: string,
  body: unknown,
  signer: keyof typeof KEYS,
  header: string | null,
  nowMs: number,
): Promise<Request> {
  const raw = JSON.stringify(body);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    [SIGNATURE_HEADER]: await sign(KEYS[signer], raw, Math.floor(nowMs / 1000)),
  };
  if (header !== null) headers["Turnout-Agent"] = header;
  return new Request(`http://w${path}`, { method: "POST", headers, body: raw });
}

/** A heartbeat body of `agent` from `pod` (the leader unless `leader` says otherwise). */
export function heartbeat(
  agent: string,
  atMs: number,
  pod = `${agent}-0`,
  leader: string | null = pod,
  mode = "sandbox",
) {
  return { agent, version: "1.2.3", mode, pod, leader, at: new Date(atMs).toISOString(), targets: {} };
}
