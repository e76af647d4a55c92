/**
 * Audit events (design §5: `{seq, at, type, detail, cause}`) as one readable sentence each, for
 * people reading the log: the `turnout` CLI, and anything else that prints a timeline. Where
 * `npm run demo` (scripts/demo.ts) words an event, the sentence is the same. No event's detail is
 * cut short; an event type this file does not know is written out key by key.
 */

/** The fields of an audit event this file reads. */
export interface EventLike {
  type: string;
  detail: unknown;
}

type Detail = Record<string, unknown>;

const asDetail = (d: unknown): Detail =>
  typeof d === "object" && d !== null && !Array.isArray(d) ? (d as Detail) : {};

/** A detail value as text: strings as they are, everything else as compact JSON. */
function text(v: unknown): string {
  if (v === undefined || v === null) return "";
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** `" (by alice: reason)"`-style suffix from a command's actor and reason, empty when neither is set. */
function byWhom(d: Detail): string {
  const parts: string[] = [];
  if (d.actor) parts.push(`by ${text(d.actor)}`);
  if (d.onBehalfOf) parts.push(`on behalf of ${text(d.onBehalfOf)}`);
  if (d.reason) parts.push(`reason: ${text(d.reason)}`);
  return parts.length ? ` (${parts.join("; ")})` : "";
}

/** Every key of a detail, `key value` separated by commas: the fallback for unknown types. */
function keyValues(d: unknown): string {
  if (typeof d !== "object" || d === null) return text(d);
  if (Array.isArray(d)) return d.map(text).join(", ");
  return Object.entries(d)
    .map(([k, v]) => `${k} ${text(v)}`)
    .join(", ");
}

/** `preflight:succeeded` step strings (the `action.progress` detail) as `preflight succeeded`. */
function stepList(steps: unknown): string {
  if (!Array.isArray(steps) || steps.length === 0) return "no steps yet";
  return steps
    .map((st) => {
      if (typeof st === "string") {
        const at = st.lastIndexOf(":");
        return at < 0 ? st : `${st.slice(0, at)} ${st.slice(at + 1)}`;
      }
      const o = asDetail(st);
      return o.name !== undefined ? `${text(o.name)} ${text(o.status)}` : text(st);
    })
    .join(", ");
}

const seconds = (ms: unknown) => (typeof ms === "number" ? `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 0)} s` : "?");

/** One audit event as a sentence. */
export function eventSentence(e: EventLike): string {
  const d = asDetail(e.detail);
  switch (e.type) {
    case "signal.firing":
    case "signal.resolved":
      return `signal received: ${text(d.source)} says ${text(d.side)} is ${text(d.status)} (${text(d.key)})${d.soft ? ", SOFT state: does not count" : ""}${d.held ? ", held by a flapping or downtime notice" : ""}`;
    case "signal.notice":
      return `signal notice from ${text(d.source)} for ${text(d.side)} (${text(d.key)}): ${keyValues(d.notices ?? d.status)}`;
    case "side.health-changed":
      return `${text(d.side)} side is ${text(d.health)} (was ${text(d.previous)})`;
    case "side.sources-changed":
      return `${text(d.side)} side's sources changed: ${keyValues(d)}`;
    case "phase.changed":
      if (d.to === "pending") return `hold started: ${text(d.reason)}`;
      if (d.to === "awaiting_approval" || (d.from === "pending" && d.to === "executing"))
        return `decision: ${text(d.reason)}`;
      return `phase ${text(d.from)} → ${text(d.to)}: ${text(d.reason)}`;
    case "approval.requested":
      return `approval requested: ${text(d.kind)} ${text(d.from)} → ${text(d.to)} (policy approval: required)`;
    case "approval.expired":
      return `approval expired: ${text(d.kind)} to ${text(d.to)}, requested ${text(d.requestedAt)}, was not approved in time`;
    case "approval.step-waiting":
      return `step ${text(d.step)} of ${text(d.id)} waits for approval${d.deadline ? ` until ${text(d.deadline)}` : ""}: ${text(d.message)}`;
    case "approval.step-approved":
      return `step ${text(d.step)} of ${text(d.id)} approved by ${text(d.by)}; forwarded to the agent`;
    case "approval.forward-failed":
      return `approval of step ${text(d.step)} of ${text(d.id)} by ${text(d.by)} did not reach agent ${text(d.agent)}, nothing approved: ${text(d.error)}`;
    case "command.accepted":
      return `command accepted: ${text(d.command)}${d.force ? " (force)" : ""}${d.to ? ` to ${text(d.to)}` : ""}${byWhom(d)}`;
    case "command.rejected":
      return `command refused: ${text(d.command)}${d.force ? " (force)" : ""}${d.actor ? ` by ${text(d.actor)}` : ""}: ${text(d.reason)}`;
    case "command.forced":
      return `BREAK-GLASS: ${text(d.actor) || "unknown actor"} forced a switch to ${text(d.to)}, which is ${text(d.health)}`;
    case "breakglass.requested":
      return `break-glass requested: ${keyValues(d)}`;
    case "breakglass.approved":
      return `break-glass approved by ${text(d.approver)}: ${keyValues(d)}`;
    case "breakglass.cancelled":
      return `break-glass cancelled by ${text(d.by)}`;
    case "action.dispatched":
      return `action dispatched: ${text(d.id)} ${text(d.kind)} ${text(d.from)} → ${text(d.to)}${d.dryRun ? " (dry run)" : ""}${d.force ? " (forced)" : ""} (signed POST to the agent)`;
    case "action.delivered":
      return `agent accepted ${text(d.id)}${typeof d.attempts === "number" && d.attempts > 1 ? ` (attempt ${d.attempts})` : ""}`;
    case "action.delivery-failed":
      return `delivery failed, will retry in ${seconds(d.retryInMs)} (${text(d.retriesLeft)} retries left): ${text(d.id)}: ${text(d.error)}`;
    case "action.redelivered":
      return `re-sending ${text(d.id)} (attempt ${text(d.attempt)})`;
    case "action.redispatched":
      return `no report for ${text(d.id)} in ${text(d.afterSeconds)} s: dispatched again (${text(d.redispatches)} so far)`;
    case "action.progress":
      return `progress of ${text(d.id)}: ${stepList(d.steps)}`;
    case "action.revived":
      return `late report for ${text(d.id)} (${text(d.status)}): the action is followed again`;
    case "action.succeeded":
      return `final report: ${text(d.id)} succeeded${d.dryRun ? " (dry run)" : ""} (${text(d.recoveryMs)} ms from dispatch to report)${d.reportedActiveSide ? `; the agent reports active side ${text(d.reportedActiveSide)}` : ""}`;
    case "action.failed":
      return `final report: ${text(d.id)} ${text(d.kind)} to ${text(d.to)} FAILED: ${text(d.code)}: ${text(d.message)}`;
    case "report.ignored":
      return `report ignored for ${text(d.actionId)} (${text(d.status)}): ${text(d.reason)}`;
    case "failover.blocked":
      return `no automatic failover: ${text(d.reason)}`;
    case "failback.blocked":
      return `no automatic failback: ${text(d.reason)}`;
    case "step.owed":
      return `step ${text(d.step)} of ${text(d.id)} is owed (${text(d.detail)}); it runs when its cluster answers`;
    case "step.owed-done":
      return `owed step ${text(d.step)} of ${text(d.id)} ${d.status === "failed" ? "failed" : "is done"}${d.detail ? ` (${text(d.detail)})` : ""}`;
    case "report.refused":
      return `report for ${text(d.actionId)} refused: signed by agent ${text(d.agent)}, dispatched to ${text(d.dispatchedTo)}`;
    case "agent.silent":
      return `agent ${text(d.agent)} is silent (${d.lastHeardAt ? `last heard ${text(d.lastHeardAt)}` : "never heard"}): no automatic action into ${Array.isArray(d.sides) && d.sides.length > 0 ? d.sides.map(text).join(" and ") : "its sides"}`;
    case "agent.returned":
      return `agent ${text(d.agent)} is heard again`;
    case "agent.probed":
      return `agent ${text(d.agent)} is silent: probing its /healthz once before blocking`;
    case "agent.probe-answered":
      return `agent ${text(d.agent)} answered the probe: counted as heard`;
    case "agent.probe-unanswered":
      return `agent ${text(d.agent)} did not answer the probe`;
    case "both-sides-down":
      return `both sides down: staying on ${text(d.active)}`;
    case "flapping.latched":
      return `${text(d.side)} is flapping (${text(d.transitions)} changes in ${text(d.windowSeconds)} s): automatic action held`;
    case "flapping.released":
      return `${text(d.side)} stable for ${text(d.stableSeconds)} s: flapping released`;
    case "drill.holding":
      return `drill holding on ${text(d.on)} until ${typeof d.until === "number" ? new Date(d.until).toISOString() : text(d.until)}`;
    case "drill.failing-back":
      return `drill failing back to ${text(d.to)}`;
    case "drill.completed":
    case "drill.aborted":
      return `${text(d.mode)} drill ${text(d.outcome)}${d.ok === false ? " (not ok)" : ""} in ${seconds(d.durationMs)}: ${text(d.detail)}`;
    case "config.changed":
      return `configuration applied: ${keyValues(d)}`;
    case "readiness.changed":
      return `readiness toward ${text(d.side)}: ${text(d.state)}${Array.isArray(d.failing) && d.failing.length > 0 ? ` (${d.failing.map(text).join(", ")} failing)` : ""}, evaluated ${text(d.at)}`;
    case "readiness.lost":
      return `not ready to fail over to ${text(d.to)}: ${Array.isArray(d.failing) && d.failing.length > 0 ? d.failing.map(text).join(", ") : "a destination check"} failing (two evaluations in a row)`;
    case "readiness.regained":
      return `ready again to fail over to ${text(d.to)}`;
    case "readiness.drift":
      return d.drifted === true
        ? `${text(d.side)} (active) has drifted from its state: ${text(d.detail)} (shown, never acted on)`
        : `${text(d.side)} (active) matches its state again`;
    default:
      return `${e.type}: ${keyValues(e.detail)}`;
  }
}
