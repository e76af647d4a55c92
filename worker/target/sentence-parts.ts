/**
 * Audit events as timeline sentences: the words `npm run demo` prints for a live incident and
 * `npm run simulate` prints for a replayed one, so both read the same.
 */

/** An audit event's detail as read by sentences: any JSON value. */
export type Detail = Record<string, unknown>;

/** An event's detail as an object ({} for anything else), so sentences read its fields safely. */
export const asDetail = (d: unknown): Detail =>
  typeof d === "object" && d !== null && !Array.isArray(d) ? (d as Detail) : {};
/** A detail field as sentence text: a string as it is, anything else as JSON. */
export const str = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));

/** How an action reaches the agent, as the `action.dispatched` sentence says it. */
export type DispatchWording = "live" | "simulated";

/** One audit event as a timeline sentence, or undefined for events the timeline leaves out. */
export function describeEvent(
  e: { type: string; detail: unknown },
  wording: DispatchWording = "live",
): string | undefined {
  const d = asDetail(e.detail);
  switch (e.type) {
    case "signal.firing":
    case "signal.resolved":
      return `signal received: ${str(d.source)} says ${str(d.side)} is ${str(d.status)} (${str(d.key)})`;
    case "side.health-changed":
      return `${str(d.side)} side is ${str(d.health)} (was ${str(d.previous)})`;
    case "approval.requested":
      return `approval requested: ${str(d.kind)} ${str(d.from)} → ${str(d.to)} (policy approval: required)`;
    case "command.accepted":
      return `command accepted: ${JSON.stringify(e.detail).slice(0, 160)}`;
    case "phase.changed":
      if (d.to === "pending") return `hold started: ${str(d.reason)}`;
      if (d.to === "awaiting_approval") return `decision: ${str(d.reason)}`;
      if (d.from === "pending" && d.to === "executing") return `decision: ${str(d.reason)}`;
      return `phase ${str(d.from)} → ${str(d.to)}: ${str(d.reason)}`;
    case "action.dispatched":
      return `action dispatched: ${str(d.id)} ${str(d.kind)} ${str(d.from)} → ${str(d.to)} (${
        wording === "live" ? "signed POST to the agent" : "simulated agent"
      })`;
    case "action.delivered":
      return `agent accepted ${str(d.id)}`;
    case "action.delivery-failed":
      return `delivery failed, will retry: ${str(d.error ?? d.reason ?? "")}`;
    case "action.succeeded":
      return `final report: ${str(d.id)} succeeded (${str(d.recoveryMs)} ms from dispatch to report)`;
    case "action.failed":
      // action.failed carries {code, message} (worker/engine/machine-actions.ts).
      return `final report: ${str(d.id)} FAILED: ${str(d.message ?? d.error ?? d.reason ?? "")}${d.code ? ` (${str(d.code)})` : ""}`;
    case "failover.blocked":
      return `decision: no failover yet: ${str(d.reason)} (${str(d.blocker)})`;
    case "both-sides-down":
      return `decision: no failover: both sides down (${str(d.active)} and ${str(d.other)}); staying on ${str(d.active)}`;
    case "approval.expired":
      return `approval for ${str(d.kind)} to ${str(d.to)} expired; no action`;
    case "signal.stale":
      return `signal ${str(d.key)} on ${str(d.side)} is stale (not seen for ${str(d.staleAfterSeconds)} s): no longer down evidence`;
    case "action.progress":
      return undefined; // the demo shows steps, with their durations, from the target view
    default:
      return `${e.type}: ${JSON.stringify(e.detail).slice(0, 160)}`;
  }
}
