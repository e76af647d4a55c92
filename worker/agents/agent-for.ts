/**
 * Which agent an action's follow-up requests go to (design §11.6: re-sends, GET polls, approvals
 * and a `revert` go to the agent recorded on the action, never to one recomputed from config).
 * Every such request asks here, so the choice is made in one place.
 */
import type { WorkerConfig } from "../../shared/config.ts";
import { type AgentName, DEFAULT_AGENT } from "../../shared/protocol.ts";

/** Where one agent is reached. */
export interface AgentAddress {
  name: AgentName;
  /** Its base URL (`agent.url`). */
  url: string;
}

/**
 * The agent that runs `action`. Today the worker knows one agent, `config.agent` (the agent named
 * `default`); the action's recorded `agent` picks among several once the config names them.
 */
export function agentFor(config: WorkerConfig, _action: { id: string; agent?: string | undefined }): AgentAddress {
  return { name: DEFAULT_AGENT, url: config.agent.url };
}
