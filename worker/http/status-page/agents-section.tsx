/**
 * The status page's Agents section (design §11.1): every configured agent, whether the worker
 * hears it, and what that means for the failovers it would execute, in words a person woken at
 * 3 a.m. reads without knowing turnout's rules. Pure rendering: the route reads the agents.
 */
import type { AgentInfo } from "../../agents/agent-object.ts";
import { formatSpan } from "../../target/target-sentences.ts";

/**
 * What the page's script compares to decide the section needs re-rendering: the same fields,
 * joined the same way, as `agentsSig()` in the script computes from `/v1/agents`.
 */
export function agentsSignature(agents: readonly AgentInfo[]): string {
  return agents
    .map((a) =>
      [a.name, a.silent, a.mode ?? "", a.notReady ?? "", a.version ?? "", a.leader ?? "", a.pods.length].join(":"),
    )
    .join("|");
}

const clock = (iso: string) => `${iso.slice(11, 19)} UTC`;
const day = (iso: string) => `${iso.slice(0, 10)} ${clock(iso)}`;

/** "dr-one (secondary), global-dr (primary and secondary)". */
export function servesText(serves: AgentInfo["serves"]): string {
  const entries = Object.entries(serves).sort(([a], [b]) => a.localeCompare(b));
  return entries.map(([target, sides]) => `${target} (${sides.join(" and ")})`).join(", ");
}

export function AgentsSection({
  agents,
  now,
  error,
}: {
  agents: readonly AgentInfo[];
  now: number;
  error?: string | undefined;
}) {
  const silent = agents.filter((a) => a.silent);
  return (
    <section class="agents" id="agents" aria-labelledby="agents-h" data-agents-sig={agentsSignature(agents)}>
      <h2 id="agents-h">Agents</h2>
      {error !== undefined ? (
        <p role="alert">Agents unavailable: {error}</p>
      ) : (
        <>
          <p class={silent.length > 0 ? "sentence state-blocked" : "sentence state-steady"} data-field="agents-summary">
            {agents.length === 0
              ? "No agent is configured."
              : silent.length === 0
                ? `All ${agents.length} agent${agents.length === 1 ? " is" : "s are"} heard.`
                : `${silent.map((a) => a.name).join(", ")} ${silent.length === 1 ? "is" : "are"} SILENT: no automatic failover goes into the sides ${silent.length === 1 ? "it serves" : "they serve"} until heard again.`}
          </p>
          <ul class="agent-list">
            {agents.map((a) => (
              <AgentItem agent={a} now={now} />
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

function AgentItem({ agent: a, now }: { agent: AgentInfo; now: number }) {
  const serves = servesText(a.serves);
  const standby = a.pods.filter((p) => !p.leader);
  return (
    <li
      class={`agent ${a.silent ? "agent-silent" : a.lastHeardAt === null ? "agent-unheard" : "agent-heard"}`}
      data-agent={a.name}
    >
      <p class="agent-head">
        <strong>{a.name}</strong>{" "}
        <span class="badge" data-field="agent-state">
          <span aria-hidden="true">{a.silent ? "⊘ " : "● "}</span>
          {a.silent ? "SILENT" : a.lastHeardAt === null ? "not heard yet" : "heard"}
        </span>
      </p>
      <p data-field="agent-heard">
        {a.silent ? (
          <>
            Silent for{" "}
            <time datetime={a.silentSince ?? a.watchingSince} data-since={a.silentSince ?? a.watchingSince}>
              {formatSpan(now - Date.parse(a.silentSince ?? a.watchingSince))}
            </time>
            {a.lastHeardAt === null
              ? `: never heard since the worker started watching it at ${day(a.watchingSince)}.`
              : `: last heard at ${day(a.lastHeardAt)}; an agent is silent after ${a.silentAfterSeconds} s without a heartbeat.`}
          </>
        ) : a.lastHeardAt === null ? (
          `Not heard yet: no heartbeat since the worker started watching it at ${day(a.watchingSince)}.`
        ) : (
          <>
            Heard{" "}
            <time datetime={a.lastHeardAt} data-since={a.lastHeardAt}>
              {formatSpan(now - Date.parse(a.lastHeardAt))}
            </time>{" "}
            ago (last heartbeat at {clock(a.lastHeardAt)}).
          </>
        )}
      </p>
      {a.silent ? (
        <p data-field="agent-meaning">
          {serves === ""
            ? "It serves no target now."
            : `No automatic failover goes into ${serves} until it is heard again; a manual command still goes, with a warning. Check its pods and whether its cluster is up (docs/operations.md, "An agent is silent").`}
        </p>
      ) : (
        <p data-field="agent-serves">{serves === "" ? "Serves no target." : `Executes failovers into ${serves}.`}</p>
      )}
      <p class="muted" data-field="agent-detail">
        Mode {a.mode ?? "not reported yet"}
        {a.notReady === "agent-mode"
          ? ` (the configuration expects ${a.expectedMode}: the sides it serves count as not ready)`
          : ""}
        ; version {a.version ?? "not reported yet"}; leader {a.leader ?? "none reported"}
        {standby.length > 0
          ? `; standby replica${standby.length === 1 ? "" : "s"} ${standby
              .map((p) => `${p.pod} (heard ${clock(p.lastHeardAt)})`)
              .join(", ")}, shown, not counted`
          : ""}
        .
      </p>
    </li>
  );
}
