/**
 * The probe of rule 17: before a failover is blocked because its destination agent is silent, the
 * target's object asks that agent once, with a `GET <agent>/healthz` signed over the path with the
 * agent's own key (design §6 signs GETs that way). Any 2xx answer counts as heard.
 */
import { agentsOf, type WorkerConfig } from "../../shared/config.ts";
import { SIGNATURE_HEADER, signPath } from "../../shared/signature.ts";
import type { Env } from "../env.ts";
import { agentKeys } from "./agent-keys.ts";
import { fetchWithin } from "./fetch-within.ts";

/** How long the probe waits for the agent (a silent agent often does not answer at all). */
export const PROBE_TIMEOUT_MS = 5_000;

/** Whether `agent` answers its signed `/healthz` now. `nowMs` is epoch milliseconds. */
export async function probeAgent(env: Env, config: WorkerConfig, agent: string, nowMs: number): Promise<boolean> {
  const entry = Object.hasOwn(agentsOf(config), agent) ? agentsOf(config)[agent] : undefined;
  const secret = agentKeys(env).byAgent.get(agent)?.[0];
  if (!entry || !secret) return false;
  const path = "/healthz";
  const signature = await signPath(secret, path, Math.floor(nowMs / 1000));
  try {
    const res = await fetchWithin(PROBE_TIMEOUT_MS, `agent ${agent}`, `${entry.url.replace(/\/+$/, "")}${path}`, {
      headers: { [SIGNATURE_HEADER]: signature },
    });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}
