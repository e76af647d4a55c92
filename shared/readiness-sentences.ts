/**
 * A target's readiness in words (design §11.3), for the status page, Slack and `turnout status`:
 * "Ready to fail over to secondary", or the first failing check with what to do about it. The
 * advice follows docs/operations.md (Readiness), where every check is explained at length. Shared:
 * the CLI prints the same sentence, reading the API's answer loosely.
 */

/** The view's `readiness` (worker/target/readiness-view.ts), as far as the sentences read it. */
export interface ReadinessLike {
  to: string;
  agent: string;
  state: "ready" | "not-ready" | "unknown";
  at: string | null;
  checks: { name: string; ok: boolean; destination: boolean; detail: string }[];
  unknown?: "none" | "stale";
  drift?: { side: string; ok: boolean; detail: string };
  configDiffers?: Record<string, string>;
}

/** Where every check is explained. */
export const READINESS_DOC = "docs/operations.md#readiness";

/** What to do when a check fails, by check name (docs/operations.md, Readiness). */
const TODO: Record<string, string> = {
  permissions: "grant it to the agent's Role (npm run manifests prints what the config needs)",
  "operator-ready": "fix the static-route operator's pods",
  "routes-valid": "fix the routes of the agent config",
  "saved-spec": "fix the config, or remove the saved spec from the target's ConfigMap",
  "routes-state": "put the active side's StaticRoute back",
  "dns-server": "start it, or open the path from the agent to it",
  "dns-key": "put the server's current TSIG key in the agent's Secret",
  "record-value": "set the record back to the active side's values",
  "etcd-destination": "fix that etcd or the path to it",
  "etcd-sync-lag": "check the synchronizer and whatever writes the heartbeat key",
  "sync-deployment": "fix the name in the config, or deploy the synchronizer",
  workloads: "fix the names in the config, or deploy what is missing",
  "destination-nodes": "bring nodes of that group back, or uncordon them",
  "fence-fraction": "check the node selectors",
  evaluator: "read the agent's log for readiness: lines",
  "agent-mode": "run the agent in the mode agents.<name>.mode says, or correct that key",
  "agent-lacks-target": "add the target to that agent's config",
  // A plan's checks are `<step>:<what>` (docs/plans.md, Readiness); the executors' names above serve their steps too.
  object: "create the object the step names, or put it back at the active side's state",
  check: "make the check's probe hold, or fix the step",
  cluster: "fix that cluster, or its kubeconfig in the agent config's clusters",
  env: "set the variable in the agent's environment (its Secret)",
  endpoint: "open the path from the agent to that host",
};

/** The advice for a check: a plan's `<step>:<what>` takes the advice of `<what>`. */
function todoOf(name: string): string | undefined {
  const what = name.slice(name.lastIndexOf(":") + 1);
  for (const key of [name, what]) if (Object.hasOwn(TODO, key)) return TODO[key];
  return undefined;
}

/** One line per target: ready, not ready with the failing check and what to do, or unknown. */
export function readinessSentence(r: ReadinessLike): string {
  if (r.state === "ready") return `Ready to fail over to ${r.to}`;
  if (r.state === "unknown") {
    return r.unknown === "stale"
      ? `Readiness to fail over to ${r.to} unknown: agent ${r.agent}'s last evaluation (${r.at ?? "never"}) is older than two intervals`
      : `Readiness to fail over to ${r.to} unknown: agent ${r.agent} has not reported any`;
  }
  const failing = r.checks.filter((c) => c.destination && !c.ok);
  const first = failing[0];
  if (!first) return `Not ready to fail over to ${r.to}; see ${READINESS_DOC}`;
  const detail = first.detail.trim() === "" ? first.name : `${first.detail.trim()} (${first.name})`;
  const more =
    failing.length > 1
      ? `; also failing: ${failing
          .slice(1)
          .map((c) => c.name)
          .join(", ")}`
      : "";
  const todo = todoOf(first.name) ?? "see what the detail says";
  return `Not ready to fail over to ${r.to}: ${detail}; ${todo}, see ${READINESS_DOC}${more}`;
}

/** The other things readiness shows: drift of the active side, and agents whose copies of the config differ. */
export function readinessNotes(r: ReadinessLike): string[] {
  const out: string[] = [];
  if (r.drift && !r.drift.ok) {
    out.push(`${r.drift.side} (active) has drifted from its state: ${r.drift.detail || "see the readiness report"}`);
  }
  if (r.configDiffers) {
    const agents = Object.entries(r.configDiffers).map(([agent, sha]) => `${agent} ${sha.slice(0, 12)}`);
    out.push(`the agents' copies of this target's config differ (${agents.join(", ")})`);
  }
  return out;
}
