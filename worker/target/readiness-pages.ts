/**
 * Readiness on the pager (design §11.4, §11.6): `readiness.lost` triggers, `readiness.regained`
 * resolves, both under `turnout/<target>/readiness` with kind `readiness` (severity `warning`);
 * the active side's drift has its own page, kind `drift`, so readiness coming back never closes
 * it. Pure: from the audit events one transaction wrote, the pages to open and close; the outbox
 * sends each key's trigger once.
 */
import { eventSentence } from "../../shared/event-sentences.ts";
import { driftNoticeKey, readinessNoticeKey } from "../engine/machine-readiness.ts";
import type { AuditEvent } from "../engine/machine-types.ts";
import type { PageIntent } from "./paging.ts";

const TODO =
  "Read the target's readiness line on the status page (or `turnout status <target>`) and fix the failing check before a failover needs it; docs/operations.md#readiness says what each means.";

/** The readiness and drift pages the events of one transaction open and close. */
export function readinessPages(target: string, events: readonly AuditEvent[]): PageIntent[] {
  const out: PageIntent[] = [];
  for (const e of events) {
    // Nearly every transaction writes none of these: put no event into words for nothing.
    if (e.type !== "readiness.lost" && e.type !== "readiness.regained" && e.type !== "readiness.drift") continue;
    const summary = `${target}: ${eventSentence(e)}`;
    const base = { summary, details: e.detail, at: e.at };
    if (e.type === "readiness.lost") {
      out.push({ action: "trigger", key: readinessNoticeKey(target), kind: "readiness", todo: TODO, ...base });
    } else if (e.type === "readiness.regained") {
      out.push({ action: "resolve", key: readinessNoticeKey(target), kind: "readiness", ...base });
    } else if (e.type === "readiness.drift") {
      const drifted = e.detail.drifted === true;
      out.push({
        action: drifted ? "trigger" : "resolve",
        key: driftNoticeKey(target),
        kind: "drift",
        ...(drifted ? { todo: "Find what changed the active side and set it back; turnout never acts on drift." } : {}),
        ...base,
      });
    }
  }
  return out;
}
