/**
 * `GET /v1/agents` (viewer, design §11.1): every configured agent with `lastHeardAt`, `silent`,
 * `version`, `mode`, `leader` and the sides it serves. Asking also starts watching an agent that
 * nothing watched yet, so its silence is counted from then.
 */
import { Hono } from "hono";
import { agentsOf } from "../../shared/config.ts";
import type { AgentInfo } from "../agents/agent-object.ts";
import { requireConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { Problem } from "../problem.ts";
import { type Identity, requireRole } from "./identity.ts";

export const agentsApi = new Hono<{ Bindings: Env; Variables: { identity: Identity } }>();

agentsApi.on(["GET", "HEAD"], "/v1/agents", requireRole("viewer"));

/** Every configured agent as shown, sorted by name. */
export async function listAgents(env: Env): Promise<AgentInfo[]> {
  const config = requireConfig(env);
  return Promise.all(
    Object.keys(agentsOf(config))
      .sort()
      .map(async (name) => {
        try {
          return await env.AGENTS.getByName(name).info(name);
        } catch (err) {
          console.error(
            JSON.stringify({ level: "error", msg: "agent object call failed", agent: name, error: String(err) }),
          );
          throw new Problem("unavailable", `agent ${name}'s record is unavailable; retry`);
        }
      }),
  );
}

agentsApi.get("/v1/agents", async (c) => c.json({ agents: await listAgents(c.env) }));
