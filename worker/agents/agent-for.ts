/**
 * Which agent an action's follow-up requests go to (design §11.6: re-sends, GET polls, approvals
 * and a `revert` go to the agent recorded on the action, never to one recomputed from config).
 * Every such request asks here, so the choice is made in one place.
 */
import { agentsOf, DEFAULT_AGENT_NAME, type WorkerConfig } from "../../shared/config.ts";
import type { AgentName } from "../../shared/protocol.ts";

/** Where one agent is reached. */
export interface AgentAddress {
  name: AgentName;
  /** Its base URL (`agents.<name>.url`). */
  url: string;
}

/**
 * The agent that runs `action`: the one recorded on it when it was committed (absent on actions
 * from before agents had names: `default`). Undefined when the config no longer names that agent.
 */
export function agentFor(
  config: Pick<WorkerConfig, "agent" | "agents">,
  action: { id: string; agent?: string | undefined },
): AgentAddress | undefined {
  const name = action.agent ?? DEFAULT_AGENT_NAME;
  const entry = agentsOf(config)[name];
  return entry ? { name, url: entry.url } : undefined;
}
