/**
 * `--agent-silent <agent>@<from>/<to>` of `npm run simulate` (design §11.1 rule 17, §11.6): an
 * agent is silent from `<from>` to `<to>`, and the replay feeds that liveness to `decide()` with
 * its times, as the agent's object tells each target it serves. A silent agent does not answer
 * the probe either, so a failover into its sides is blocked `agent-silent` until `<to>`.
 */
import { agentsOf, type WorkerConfig } from "../../shared/config.ts";
import { parseTime } from "./prometheus.ts";

/** One silence of one agent, epoch ms, `from` < `to`. */
export interface AgentSilence {
  agent: string;
  from: number;
  to: number;
}

export type ParsedSilence = { ok: true; silence: AgentSilence } | { ok: false; message: string };

/**
 * Parses `<agent>@<from>/<to>`; each time is ISO, `now`, or relative to now like the other time
 * flags (`-2h`). The agent must be one of the config's agents (`agent` alone is `default`).
 */
export function parseAgentSilence(text: string, config: WorkerConfig, now: number): ParsedSilence {
  const usage = `--agent-silent ${JSON.stringify(text)}: expected <agent>@<from>/<to>, e.g. agent-b@2026-11-02T10:00:00Z/2026-11-02T11:00:00Z or agent-b@-2h/-1h`;
  const at = text.indexOf("@");
  const slash = text.indexOf("/", at + 1);
  if (at <= 0 || slash < 0) return { ok: false, message: usage };
  const agent = text.slice(0, at);
  const fromText = text.slice(at + 1, slash);
  const toText = text.slice(slash + 1);
  const known = Object.keys(agentsOf(config)).sort();
  if (!known.includes(agent)) {
    return {
      ok: false,
      message: `--agent-silent ${JSON.stringify(text)}: no agent ${JSON.stringify(agent)} in the config (its agents: ${known.join(", ")})`,
    };
  }
  const from = parseTime(fromText, now);
  const to = parseTime(toText, now);
  if (from === null) return { ok: false, message: `${usage} (the start ${JSON.stringify(fromText)} is not a time)` };
  if (to === null) return { ok: false, message: `${usage} (the end ${JSON.stringify(toText)} is not a time)` };
  if (to <= from) {
    return {
      ok: false,
      message: `--agent-silent ${JSON.stringify(text)}: the start must be before the end (${new Date(from).toISOString()} ≥ ${new Date(to).toISOString()})`,
    };
  }
  return { ok: true, silence: { agent, from, to } };
}

/** The liveness inputs of the silences, as the agent's object sends them: silent at `from`, heard at `to`. */
export function livenessInputs(
  silences: readonly AgentSilence[],
  config: WorkerConfig,
): { at: number; agent: string; silent: boolean; lastHeardAt: number | null }[] {
  const agents = agentsOf(config);
  // Overlapping silences of one agent are one silence: heard only when the last of them ends.
  const merged: AgentSilence[] = [];
  for (const s of [...silences].sort((a, b) => a.agent.localeCompare(b.agent) || a.from - b.from)) {
    const last = merged.at(-1);
    if (last && last.agent === s.agent && s.from <= last.to) last.to = Math.max(last.to, s.to);
    else merged.push({ ...s });
  }
  return merged
    .flatMap((s) => {
      // Called silent at `from`: last heard silentAfterSeconds before it.
      const after = (Object.hasOwn(agents, s.agent) ? agents[s.agent]?.silentAfterSeconds : undefined) ?? 60;
      return [
        { at: s.from, agent: s.agent, silent: true, lastHeardAt: s.from - after * 1000 },
        { at: s.to, agent: s.agent, silent: false, lastHeardAt: s.to },
      ];
    })
    .sort((a, b) => a.at - b.at || a.agent.localeCompare(b.agent) || Number(a.silent) - Number(b.silent));
}
