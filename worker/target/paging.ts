/**
 * When a person is needed, and when no longer (design §11.4, §11.6): the trigger/resolve pairs
 * PagerDuty and Opsgenie receive. Pure: it reads the audit events one committed transaction wrote
 * and the machine state it left, and the target's open pages, and says which pages open and
 * which close. The Durable Object keeps the open pages beside its state and queues what this
 * returns (see outbox.ts), so a storm of signals in one incident opens its page once.
 *
 * - incident (`turnout/<target>/<seq of the event that left steady>`): open while an approval
 *   waits (kind `approval`) or an automatic failover past its hold is blocked while the active
 *   side is down (kind `blocked`); over when the target leaves that (approved, cancelled, expired,
 *   recovered, an action started).
 * - action (`turnout/<target>/action/<id>`): open while the phase is `failed`; stays open while a
 *   retry or a revert runs, over when the target is back in another phase (a later success, a
 *   revert, a cancel); a newer failed action takes over from it.
 * - break-glass (`turnout/<target>/breakglass/<request id>`): open from the request until it is
 *   approved, cancelled, or expires.
 * - anything else (agent silent, readiness lost) is opened and closed by its owner through
 *   {@link raisePage} and {@link clearPage}.
 */
import { z } from "zod";
import { eventSentence } from "../../shared/event-sentences.ts";
import { type PageKind, PageKindSchema } from "../../shared/notify-config.ts";
import type { MachineState } from "../engine/machine.ts";
import type { AuditEvent } from "../engine/machine-types.ts";
import type { Json } from "../engine/signals.ts";
import { BREAK_GLASS_TTL_MS } from "./break-glass.ts";

/** A page that is open (triggered, not yet resolved), one row per key. */
export interface OpenPage {
  key: string;
  kind: PageKind;
  openedAt: number;
  /** When it resolves by itself (a break-glass request's expiry); null: only when its cause ends. */
  expiresAt: number | null;
}

/** One page to send: opened (`trigger`) or closed (`resolve`). */
export interface PageIntent {
  action: "trigger" | "resolve";
  key: string;
  kind: PageKind;
  /** One sentence for people (design §5b), prefixed with the target. */
  summary: string;
  /** What the person paged should do (triggers). */
  todo?: string;
  details: Record<string, Json>;
  at: number;
}

/**
 * A page asked for by another part of the worker (agent silent, readiness lost), through
 * `TargetObject.page`: a trigger opens it once per key, a resolve closes it.
 */
export const PageRequestSchema = z
  .object({
    action: z.enum(["trigger", "resolve"]),
    key: z.string().regex(/^turnout\/[^\s]+$/, "a key of design §11.6 (see pageKeys)"),
    kind: PageKindSchema,
    summary: z.string().min(1).max(1024),
    todo: z.string().max(2000).optional(),
    details: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type PageRequest = z.infer<typeof PageRequestSchema>;

/** What paging keeps per target: the open incident's seq and the open pages. */
export interface PagingState {
  /** Seq of the event that left steady, while the target is not steady. */
  incident: number | null;
  open: Map<string, OpenPage>;
}

/** The keys of design §11.6. */
export const pageKeys = {
  incident: (target: string, seq: number) => `turnout/${target}/${seq}`,
  action: (target: string, id: string) => `turnout/${target}/action/${id}`,
  breakGlass: (target: string, id: string) => `turnout/${target}/breakglass/${id}`,
  agent: (name: string) => `turnout/agent/${name}`,
  readiness: (target: string) => `turnout/${target}/readiness`,
};

/** Opens `page` unless it is open already (then nothing is sent again: one trigger per key). */
export function raisePage(
  paging: PagingState,
  page: Omit<PageIntent, "action"> & { expiresAt?: number | null },
): PageIntent[] {
  if (paging.open.has(page.key)) return [];
  const { expiresAt = null, ...intent } = page;
  paging.open.set(page.key, { key: page.key, kind: page.kind, openedAt: page.at, expiresAt });
  return [{ action: "trigger", ...intent }];
}

/** Closes the page of `key` if it is open. */
export function clearPage(paging: PagingState, key: string, summary: string, at: number): PageIntent[] {
  const open = paging.open.get(key);
  if (!open) return [];
  paging.open.delete(key);
  return [{ action: "resolve", key, kind: open.kind, summary, details: {}, at }];
}

/** The pages one committed transaction opens and closes; `paging` is updated in place. */
export function pagesFor(
  target: string,
  events: readonly AuditEvent[],
  machine: MachineState,
  paging: PagingState,
  now: number,
): PageIntent[] {
  const out: PageIntent[] = [];
  const sentence = (e: AuditEvent) => `${target}: ${eventSentence(e)}`;
  const latest = (type: string) => events.findLast((e) => e.type === type);

  // The incident's key is the event that left steady; it ends when the target is steady again.
  for (const e of events) {
    if (e.type === "phase.changed" && e.detail.from === "steady" && paging.incident === null) paging.incident = e.seq;
  }
  if (machine.phase === "steady") paging.incident = null;

  // Break-glass requests, in the order they happened.
  for (const e of events) {
    const id = typeof e.detail.nonce === "string" ? e.detail.nonce : null;
    if (id === null) continue;
    const key = pageKeys.breakGlass(target, id);
    if (e.type === "breakglass.requested") {
      const expiresAt = e.at + BREAK_GLASS_TTL_MS;
      out.push(
        ...raisePage(paging, {
          key,
          kind: "break-glass",
          summary: sentence(e),
          todo: `A different operator confirms or cancels it before ${new Date(expiresAt).toISOString()}: the Slack buttons, the status page, or the API command {"command": "confirm", "request": "${id}"}.`,
          details: { ...context(machine), request: { id, ...e.detail } },
          at: e.at,
          expiresAt,
        }),
      );
    } else if (e.type === "breakglass.approved" || e.type === "breakglass.cancelled") {
      out.push(...clearPage(paging, key, sentence(e), e.at));
    }
  }

  // The failed action: one page per failed action id, closed once the target is out of it.
  const failedKey = machine.phase === "failed" && machine.action ? pageKeys.action(target, machine.action.id) : null;
  for (const page of [...paging.open.values()]) {
    if (page.kind !== "action-failed" || page.key === failedKey) continue;
    if (machine.phase === "executing" && failedKey === null) continue; // a retry or revert is under way
    const by = latest("phase.changed");
    out.push(...clearPage(paging, page.key, by ? sentence(by) : `${target}: the failed action is over`, now));
  }
  if (failedKey && machine.action) {
    const a = machine.action;
    const by = latest("action.failed") ?? latest("phase.changed");
    out.push(
      ...raisePage(paging, {
        key: failedKey,
        kind: "action-failed",
        summary: by ? sentence(by) : `${target}: ${a.kind} ${a.id} to ${a.to} failed`,
        todo: `Read the failed step on the status page, then: /turnout retry ${target} (run it again), /turnout revert ${target} (undo its steps back to ${a.from}) or /turnout cancel ${target}. Automatic action is off until then.`,
        details: context(machine),
        at: now,
      }),
    );
  }

  // The incident: an approval waiting, or an automatic failover blocked while the active side is down.
  const waiting = machine.phase === "awaiting_approval" && machine.approval !== null;
  const blocked = machine.phase === "pending" && machine.blocked !== null;
  const seq = paging.incident ?? machine.approval?.cause ?? machine.pendingCause;
  for (const page of [...paging.open.values()]) {
    if (page.kind !== "approval" && page.kind !== "blocked") continue;
    if ((waiting || blocked) && seq !== null && page.key === pageKeys.incident(target, seq)) continue;
    const by = latest("phase.changed") ?? latest("approval.expired");
    out.push(...clearPage(paging, page.key, by ? sentence(by) : `${target}: no longer needs a person`, now));
  }
  if ((waiting || blocked) && seq !== null) {
    const key = pageKeys.incident(target, seq);
    if (waiting && machine.approval) {
      const ap = machine.approval;
      const by = latest("approval.requested");
      out.push(
        ...raisePage(paging, {
          key,
          kind: "approval",
          summary: by
            ? sentence(by)
            : `${target}: approval requested: ${ap.kind} ${ap.from} → ${ap.to} (policy approval: required)`,
          todo: `Approve or cancel the ${ap.kind} to ${ap.to} before ${new Date(ap.deadline).toISOString()}: /turnout approve ${target} or /turnout cancel ${target}, the Slack buttons, or the status page.`,
          details: { ...context(machine), approval: { ...ap, deadline: new Date(ap.deadline).toISOString() } },
          at: now,
        }),
      );
    } else if (machine.sides[machine.activeSide].health === "down") {
      const by = latest("failover.blocked") ?? latest("both-sides-down");
      out.push(
        ...raisePage(paging, {
          key,
          kind: "blocked",
          summary: by
            ? sentence(by)
            : `${target}: ${machine.activeSide} is down and automatic failover is blocked (${machine.blocked})`,
          todo: `${machine.activeSide} is down and turnout will not fail over by itself (${machine.blocked}). Check the other side; if it is safe, /turnout failover ${target}; if the block should lift (pause, cooldown, budget), /turnout resume ${target} or wait.`,
          details: { ...context(machine), blocker: machine.blocked },
          at: now,
        }),
      );
    }
  }
  return out;
}

/** Closes the pages that expire by `now` (break-glass requests nobody answered). */
export function expirePages(target: string, paging: PagingState, now: number): PageIntent[] {
  const out: PageIntent[] = [];
  for (const page of [...paging.open.values()]) {
    if (page.expiresAt === null || page.expiresAt > now) continue;
    out.push(...clearPage(paging, page.key, `${target}: the ${page.kind} request expired unanswered`, now));
  }
  return out;
}

/** The incident's signals and the action: what a page's details carry. */
function context(m: MachineState): Record<string, Json> {
  const side = (s: "primary" | "secondary") => ({
    health: m.sides[s].health,
    firingSources: m.sides[s].firingSources,
    heldSources: m.sides[s].heldSources,
    incidents: m.sides[s].incidents,
  });
  const a = m.action;
  return {
    target: m.target,
    phase: m.phase,
    activeSide: m.activeSide,
    sides: { primary: side("primary"), secondary: side("secondary") },
    action: a
      ? {
          id: a.id,
          kind: a.kind,
          from: a.from,
          to: a.to,
          status: a.status,
          trigger: a.trigger,
          reason: a.reason,
          ...(a.error ? { error: a.error } : {}),
          steps: a.steps.map((s) => ({ name: s.name, status: s.status })),
        }
      : null,
  };
}
