/**
 * `POST /v1/agent/heartbeats` (design §11.1, §11.6): verified with the key of the agent the
 * `Turnout-Agent` header names, before the body is parsed; the body's `agent` must be that same
 * agent (a key of agent-a cannot speak for agent-b). Answered `200 {serves}`. Never shed: no
 * overload answer here, since a heartbeat refused under load would make a live agent look silent.
 */
import { Hono } from "hono";
import { agentsOf, formatIssues, type Side, servedBy, sideAgent, type WorkerConfig } from "../../shared/config.ts";
import { type HeartbeatAnswer, HeartbeatSchema, type ReadinessReport } from "../../shared/protocol.ts";
import { describeSignatureFailure, SIGNATURE_HEADER, verify } from "../../shared/signature.ts";
import { requireConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { Problem } from "../problem.ts";
import { AGENT_HEADER, agentKeys, agentOfHeader } from "./agent-keys.ts";
import { AgentObject } from "./agent-object.ts";

export const agentHeartbeats = new Hono<{ Bindings: Env }>();

/** The worker's clock for signature windows (a test's, else the real one). */
const nowMs = () => AgentObject.testing?.now?.() ?? Date.now();

/**
 * Verifies an agent's signed request by the key of the agent its header names. Unknown name, no
 * key, or a bad signature: 401 (one answer, so a probe learns nothing about which names exist).
 */
export async function verifyAgentRequest(
  env: Env,
  headers: Headers,
  raw: string,
  now: number,
): Promise<{ agent: string; t: number }> {
  const agent = agentOfHeader(headers);
  const secrets = agent === undefined ? undefined : agentKeys(env).byAgent.get(agent);
  if (agent === undefined || !secrets || secrets.length === 0) {
    throw new Problem("unauthorized", `unknown agent in ${AGENT_HEADER}, or no key configured for it`);
  }
  const check = await verify(secrets, headers.get(SIGNATURE_HEADER), raw, now / 1000);
  if (!check.ok) {
    throw new Problem("unauthorized", describeSignatureFailure(check.reason), { extra: { reason: check.reason } });
  }
  return { agent, t: check.timestamp };
}

agentHeartbeats.post("/v1/agent/heartbeats", async (c) => {
  const raw = await c.req.text();
  const receivedAt = nowMs();
  const { agent, t } = await verifyAgentRequest(c.env, c.req.raw.headers, raw, receivedAt);
  const config = AgentObject.testing?.config?.() ?? requireConfig(c.env);
  if (!Object.hasOwn(agentsOf(config), agent)) {
    throw new Problem("unauthorized", `agent ${agent} is not in the worker's configuration`);
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    throw new Problem("validation", `body is not JSON: ${(err as Error).message}`);
  }
  const parsed = HeartbeatSchema.safeParse(json);
  if (!parsed.success) {
    throw new Problem("validation", "invalid heartbeat; see errors", { errors: formatIssues(parsed.error) });
  }
  const hb = parsed.data;
  if (hb.agent !== agent) {
    // Signed with one agent's key, speaking for another: the key does not vouch for that name.
    throw new Problem("unauthorized", `the body names agent ${hb.agent}, the signature is ${agent}'s`);
  }
  const serves = servedBy(config, agent);
  const { kept, refused } = splitReadiness(hb.readiness, serves);
  let outcome: string;
  try {
    // Its liveness is a fact whatever else it carries: recorded with what it may say of readiness.
    outcome = await c.env.AGENTS.getByName(agent).heartbeat(agent, { ...hb, readiness: kept }, t, receivedAt);
  } catch (err) {
    console.error(JSON.stringify({ level: "error", msg: "heartbeat not recorded", agent, error: String(err) }));
    // Not 503 (design §11.6: heartbeats are never shed); the agent retries on its next beat.
    throw new Problem("internal", `heartbeat of ${agent} could not be recorded`);
  }
  const answer: HeartbeatAnswer = { serves };
  if (refused.length > 0) {
    await refuseReadiness(c.env, config, agent, refused);
    throw new Problem(
      "forbidden",
      `agent ${agent} sent readiness for ${refused.map((r) => `${r.target} ${r.sides.join("/")}`).join(", ")}, which it does not serve; refused and audited (report.refused)`,
      // The sides it does serve, so an agent whose config is older than the worker's corrects itself.
      { extra: { ...answer, heard: outcome } },
    );
  }
  return c.json({ ...answer, heard: outcome });
});

/** Readiness entries of the sides the agent serves, and the targets' sides it does not. */
function splitReadiness(
  readiness: ReadinessReport | undefined,
  serves: Record<string, Side[]>,
): { kept: ReadinessReport; refused: { target: string; sides: Side[] }[] } {
  const kept: ReadinessReport = {};
  const refused: { target: string; sides: Side[] }[] = [];
  for (const [target, sides] of Object.entries(readiness ?? {})) {
    const served = Object.hasOwn(serves, target) ? (serves[target] ?? []) : [];
    const mine = Object.entries(sides).filter(([side]) => served.includes(side as Side));
    const others = Object.keys(sides).filter((side) => !served.includes(side as Side)) as Side[];
    if (mine.length > 0) kept[target] = Object.fromEntries(mine);
    if (others.length > 0) refused.push({ target, sides: others });
  }
  return { kept, refused };
}

/** Audits each refusal on its target (a target the config does not know has no object: logged). */
async function refuseReadiness(
  env: Env,
  config: WorkerConfig,
  agent: string,
  refused: readonly { target: string; sides: Side[] }[],
): Promise<void> {
  for (const { target, sides } of refused) {
    const entry = Object.hasOwn(config.targets, target) ? config.targets[target] : undefined;
    console.error(JSON.stringify({ level: "error", msg: "readiness refused", agent, target, sides }));
    if (!entry) continue;
    const servedBy = Object.fromEntries(sides.map((side) => [side, sideAgent(entry, side)]));
    await env.TARGETS.getByName(target).readinessRefused(target, { agent, sides, servedBy });
  }
}
