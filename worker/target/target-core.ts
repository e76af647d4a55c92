/**
 * The per-target logic around the decision engine (design §4, §5): folding a webhook's signals
 * into the stored ones (dedupe, ordering, clock skew), auditing them, observing the sides
 * (staleness, re-routing), clearing a signal, and feeding `decide`. It is synchronous and free of
 * I/O except through the {@link TargetStore} it is handed, so the Durable Object (SQLite) and
 * `npm run simulate` (memory) run exactly the same rules.
 */
import { sideAgent, type WorkerTarget } from "../../shared/config.ts";
import {
  type Decision,
  decide,
  decideParsed,
  type Effect,
  holdsObservation,
  initialState,
  type MachineInput,
  type MachineState,
} from "../engine/machine.ts";
import { nextDeadline } from "../engine/machine-rules.ts";
import type { AuditEvent, ParsedMachineInput } from "../engine/machine-types.ts";
import { routeSide } from "../engine/routing.ts";
import {
  goingStale,
  type IngestResult,
  isHeld,
  type Json,
  mergeSignal,
  type Observation,
  observe,
  type Signal,
  type StoredSignal,
  sameVersion,
} from "../engine/signals.ts";

/** An `at` further ahead of receipt than this is taken as the receipt time (design §4). */
export const MAX_CLOCK_SKEW_MS = 300_000;

/**
 * Where the core reads and writes one target's signals and audit log. Synchronous by design.
 * Observing may go through the optional {@link TargetStore.observation}, {@link TargetStore.goingStale}
 * and {@link TargetStore.nextStaleAt}, so that a store can answer from aggregates and indexes instead
 * of reading every firing row per input (design §4: bounded reads); a store without them is
 * observed from {@link TargetStore.firingSignals}, with the same result.
 */
export interface TargetStore {
  /** The stored signal of `key`, if any. */
  signal(key: string): StoredSignal | undefined;
  putSignal(signal: StoredSignal): void;
  /** Every stored firing signal of the target (re-routing after a matcher edit only). */
  firingSignals(): StoredSignal[];
  appendEvent(event: AuditEvent): void;
  /** The per-side observation of the firing signals at `now`, as {@link observe} computes it. */
  observation?(now: number, staleAfterMs: number): Observation & { staleAt: number | null };
  /** Firing HARD signals stale at `now` and not yet announced stale (`staleSince` null), by last seen then key. */
  goingStale?(now: number, staleAfterMs: number): StoredSignal[];
  /** When the next fresh firing HARD signal goes stale (null: none, or staleness is off). */
  nextStaleAt?(now: number, staleAfterMs: number): number | null;
  /** A hint: these keys are about to be read (a store may fetch them in one statement). */
  preload?(keys: readonly string[]): void;
}

/** The shell's persisted state: the machine plus what the shell itself keeps. */
export interface CoreState {
  target: string;
  /** The last observation fed to the machine (diagnostics and tests). */
  observation: Observation;
  machine: MachineState;
  /** The sides' matchers the stored signals were routed with (JSON), to route them again on change. */
  routedWith: string | null;
  /** When `decide` last ran (its `now`): no deadline falls due before the machine's next one after it. */
  decidedAt?: number;
  /**
   * No firing signal goes stale before `at` (null: none until one is written), for signals going
   * stale `staleAfterMs` after they were last seen: observing then need not ask the store which
   * went stale. Set by each observation (its `staleAt`, once the stale ones are announced) and
   * lowered by every firing signal the core writes; absent (an older row), the store is asked.
   */
  staleBound?: { at: number | null; staleAfterMs: number };
}

/** The configuration one target is handled with (or undefined: it left the config, rule 15). */
export type TargetConfig = Pick<WorkerTarget, "policy" | "initialActiveSide" | "drill" | "sides">;

/** One routed signal of a webhook, as the front worker hands it over. */
export interface CoreDelivery {
  side: "primary" | "secondary";
  signal: Signal;
}

/** What one call did: effects for the shell to perform after committing, plus call-specific results. */
export interface CoreOutcome {
  effects: Effect[];
  /** Whether anything was written (the shell saves the state only then). */
  changed: boolean;
  /** For commands: why it was refused (HTTP 409 detail). */
  rejected?: string;
  /** For commands that went: warnings for the person (a silent agent, an unfinished agent's action). */
  warnings?: string[];
}

const EMPTY_SIDE = { firingSources: [], heldSources: [], staleSources: [], incidents: [] };

/**
 * An input the shell feeds `decide`. The trust boundary is where the data came in, not here:
 * reports and delivery results were verified and parsed by the HTTP route or the transport,
 * configuration by the config loader, and alarms and observations are the shell's own, so these
 * come in their parsed shape and are not parsed again on every call (design §11.5). A command
 * is the exception (see {@link Run.step}).
 */
export type ShellInput = Exclude<ParsedMachineInput, { type: "command" }> | Extract<MachineInput, { type: "command" }>;

/** A fresh shell state for a target seen for the first time. */
export function newCoreState(target: string, config: TargetConfig | undefined, fallback: TargetConfig): CoreState {
  return {
    target,
    observation: { primary: { ...EMPTY_SIDE }, secondary: { ...EMPTY_SIDE } },
    machine: initialState(target, config ?? fallback),
    routedWith: config ? JSON.stringify(config.sides) : null,
  };
}

/** The transition under way: the state, the store, and what it emitted. */
class Run {
  readonly effects: Effect[] = [];
  changed = false;
  readonly store: TargetStore;
  readonly state: CoreState;
  readonly now: number;
  constructor(store: TargetStore, state: CoreState, now: number) {
    this.store = store;
    this.state = state;
    this.now = now;
  }

  /** Appends a shell event (signals, warnings) with the next seq of the machine's counter. */
  event(type: string, detail: Record<string, Json>, cause: number | null = null, at = this.now): number {
    const m = this.state.machine;
    m.seq += 1;
    const event: AuditEvent = { seq: m.seq, at, type, detail, ...(cause === null ? {} : { cause }) };
    this.store.appendEvent(event);
    this.effects.push({ type: "audit", event });
    this.changed = true;
    return m.seq;
  }

  /**
   * One `decide` call: its audit events are written and its effects collected. Only a command is
   * validated again (its limits, such as a reason's length, live in the machine's schema, and
   * commands come at a person's pace); every other input is already in its parsed shape.
   */
  step(input: ShellInput): string | undefined {
    const now = this.now;
    return this.apply(
      input.type === "command" ? decide(this.state.machine, input, now) : decideParsed(this.state.machine, input, now),
    );
  }

  /** Warnings of the decisions of this run (commands). */
  readonly warnings: string[] = [];

  private apply(d: Decision): string | undefined {
    if (d.warnings) this.warnings.push(...d.warnings);
    this.state.machine = d.state;
    this.state.decidedAt = this.now;
    for (const e of d.effects) {
      if (e.type === "setTimer") continue; // one timer is armed at the end of the run
      if (e.type === "audit") this.store.appendEvent(e.event);
      this.effects.push(e);
    }
    this.changed = true;
    return d.rejected;
  }

  staleAfterMs(): number {
    return this.state.machine.policy.staleAfterSeconds * 1000;
  }

  /** Writes a signal, keeping {@link CoreState.staleBound} a lower bound of when one goes stale. */
  put(signal: StoredSignal): void {
    putSignal(this.store, this.state, signal);
  }

  /** Whether a signal may have gone stale since the last observation (else the store is not asked). */
  private mayHaveGoneStale(staleAfterMs: number): boolean {
    const bound = this.state.staleBound;
    if (staleAfterMs === 0) return false;
    return bound === undefined || bound.staleAfterMs !== staleAfterMs || (bound.at !== null && bound.at <= this.now);
  }

  /**
   * Observes the stored firing signals at `now`: announces each signal that went stale (once),
   * then feeds the observation to the machine (it audits only what changed). Returns when the next
   * fresh signal goes stale.
   */
  observe(cause: number | undefined, always = false): number | null {
    const staleAfter = this.staleAfterMs();
    for (const s of this.mayHaveGoneStale(staleAfter) ? dueStale(this.store, this.now, staleAfter) : []) {
      this.put({ ...s, staleSince: this.now });
      this.event("signal.stale", {
        key: s.key,
        source: s.source,
        side: s.side,
        incident: s.incident,
        lastSeen: new Date(s.lastSeen).toISOString(),
        staleAfterSeconds: staleAfter / 1000,
      });
      this.effects.push({
        type: "notify",
        kind: "alert",
        text: `${this.state.target}: ${s.source} signal ${s.key} on ${s.side} not seen for ${Math.round(staleAfter / 3600_000)} h: it no longer counts as down evidence. If it is over, clear it (/turnout clear ${this.state.target} ${s.key}); if not, check the source still re-sends it`,
      });
    }
    const { staleAt, ...observation } =
      this.store.observation?.(this.now, staleAfter) ?? observe(this.store.firingSignals(), this.now, staleAfter);
    this.state.observation = observation;
    this.state.staleBound = { at: staleAt, staleAfterMs: staleAfter };
    // An observation the machine already holds, with no deadline due, is a no-op for `decide`
    // (its sides are unchanged and every rule already settled): skip the call (issue 19).
    if (!always && this.machineHolds(observation) && !this.deadlineDue()) return staleAt;
    this.step({
      type: "observed",
      sides: observation,
      ...(cause === undefined ? {} : { cause }),
    });
    return staleAt;
  }

  private machineHolds(observation: Observation): boolean {
    const sides = this.state.machine.sides;
    return (
      holdsObservation(sides.primary, observation.primary) && holdsObservation(sides.secondary, observation.secondary)
    );
  }

  /** Whether a machine deadline fell due since `decide` last ran (unknown: yes). */
  private deadlineDue(): boolean {
    const last = this.state.decidedAt;
    if (last === undefined || last > this.now) return true;
    const at = nextDeadline(this.state.machine, last);
    return at !== null && at <= this.now;
  }

  /** Closes the run: one timer, at the machine's next deadline or the next staleness. */
  finish(staleAt: number | null): CoreOutcome {
    const deadline = nextDeadline(this.state.machine, this.now);
    const at = [deadline, this.state.machine.configured ? staleAt : null].filter((t): t is number => t !== null);
    this.effects.push({ type: "setTimer", at: at.length === 0 ? null : Math.min(...at) });
    return { effects: this.effects, changed: this.changed };
  }
}

/**
 * Brings the state in line with the configuration before any input (rule 15, §4 re-routing): a
 * policy or drill edit is a `config` input; a target that left the config is `unconfigured`; a
 * matcher edit routes the stored firing signals again.
 */
export function applyConfig(
  store: TargetStore,
  state: CoreState,
  config: TargetConfig | undefined,
  now: number,
): CoreOutcome {
  const run = new Run(store, state, now);
  const m = state.machine;
  if (!config) {
    if (m.configured) run.step({ type: "unconfigured" });
    return { effects: run.effects, changed: run.changed };
  }
  const agents = { primary: sideAgent(config, "primary"), secondary: sideAgent(config, "secondary") };
  const differs =
    !m.configured ||
    m.sideAgents.primary !== agents.primary ||
    m.sideAgents.secondary !== agents.secondary ||
    JSON.stringify(m.policy) !== JSON.stringify(config.policy) ||
    m.configuredInitialSide !== config.initialActiveSide ||
    JSON.stringify(m.drillConfig) !== JSON.stringify(config.drill ?? null);
  if (differs) {
    run.step({
      type: "config",
      policy: config.policy,
      initialActiveSide: config.initialActiveSide,
      ...(config.drill ? { drill: config.drill } : {}),
      agents,
    });
  }
  const routing = JSON.stringify(config.sides);
  if (state.routedWith !== routing) {
    let moved = 0;
    for (const s of store.firingSignals()) {
      const side = routeSide(config.sides, s.labels);
      if (side === s.side) continue;
      moved += 1;
      if (side === null) {
        // It no longer matches either side: it stops counting, and its resolve would go elsewhere.
        run.put({ ...s, status: "resolved" });
        run.event("signal.unrouted", { key: s.key, source: s.source, side: s.side, incident: s.incident });
      } else {
        run.put({ ...s, side });
        run.event("signal.rerouted", { key: s.key, source: s.source, from: s.side, to: side, incident: s.incident });
      }
    }
    state.routedWith = routing;
    run.changed = true;
    if (moved > 0) run.observe(undefined);
  }
  return { effects: run.effects, changed: run.changed };
}

/** Ingest warnings (e.g. `truncatedAlerts`), recorded in the audit log. */
export interface CoreWarning {
  type: string;
  detail: Record<string, Json>;
}

/**
 * Records one webhook's deliveries for this target: signals (dedupe and ordering per design §4,
 * clock skew clamped), an audit event per change and per warning, then the machine's reaction.
 */
export function ingest(
  store: TargetStore,
  state: CoreState,
  deliveries: readonly CoreDelivery[],
  warnings: readonly CoreWarning[],
  receivedAt: number,
  now: number,
): CoreOutcome & { result: IngestResult } {
  const run = new Run(store, state, now);
  const result: IngestResult = { accepted: 0, duplicates: 0, ignored: 0 };
  for (const w of warnings) run.event(w.type, w.detail, null, receivedAt);
  let cause: number | undefined;
  store.preload?.(deliveries.map((d) => d.signal.key));
  for (const delivery of deliveries) {
    let d = delivery;
    if (d.signal.at > receivedAt + MAX_CLOCK_SKEW_MS) {
      // A sender whose clock runs ahead would make every later update of this key stale.
      run.event(
        "signal.clock-skew",
        {
          key: d.signal.key,
          source: d.signal.source,
          at: new Date(d.signal.at).toISOString(),
          aheadMs: d.signal.at - receivedAt,
        },
        null,
        receivedAt,
      );
      d = { ...d, signal: { ...d.signal, at: receivedAt } };
    }
    const stored = store.signal(d.signal.key);
    const { outcome, next } = mergeSignal(stored, d, receivedAt);
    if (outcome === "stale") {
      result.ignored += 1;
      continue;
    }
    run.put(next);
    if (outcome === "duplicate") {
      result.duplicates += 1;
      // Seen again after it went stale: fresh evidence again, so the sides are observed anew.
      if (stored?.staleSince != null) {
        cause = run.event(
          "signal.refreshed",
          { key: next.key, side: next.side, incident: next.incident },
          null,
          receivedAt,
        );
      }
      continue;
    }
    result.accepted += 1;
    const s = d.signal;
    // A notice (acknowledgement, flapping, downtime) reads as a notice, also for a key never seen.
    const sameAsStored = stored !== undefined && sameVersion(stored, next);
    const type = sameAsStored || (stored === undefined && s.notice) ? "signal.notice" : `signal.${next.status}`;
    cause = run.event(
      type,
      {
        key: next.key,
        source: next.source,
        side: next.side,
        status: next.status,
        soft: next.soft,
        held: isHeld(next.notices),
        incident: next.incident,
        at: new Date(next.at).toISOString(),
        ...(s.notice ? { notice: s.notice } : {}),
      },
      null,
      receivedAt,
    );
  }
  // Rule 8: signals are recorded in every phase; the machine decides what they mean now.
  const staleAt = cause !== undefined ? run.observe(cause) : null;
  const out = run.finish(cause !== undefined ? staleAt : nextStaleAt(store, state, now));
  return { ...out, result };
}

/** Writes `signal` and lowers the state's stale bound to when it goes stale, if it is firing. */
function putSignal(store: TargetStore, state: CoreState, signal: StoredSignal): void {
  store.putSignal(signal);
  const bound = state.staleBound;
  if (bound === undefined || signal.status !== "firing" || signal.staleSince !== null) return;
  const at = signal.lastSeen + bound.staleAfterMs;
  if (bound.at === null || at < bound.at) state.staleBound = { at, staleAfterMs: bound.staleAfterMs };
}

/** The signals due to be announced stale, from the store's own query or its firing signals. */
function dueStale(store: Pick<TargetStore, "firingSignals" | "goingStale">, now: number, staleAfterMs: number) {
  return store.goingStale ? store.goingStale(now, staleAfterMs) : goingStale(store.firingSignals(), now, staleAfterMs);
}

/** When the next fresh firing signal goes stale (for the alarm when nothing was observed). */
function nextStaleAt(store: TargetStore, state: CoreState, now: number): number | null {
  const ms = state.machine.policy.staleAfterSeconds * 1000;
  if (ms === 0) return null;
  return store.nextStaleAt ? store.nextStaleAt(now, ms) : observe(store.firingSignals(), now, ms).staleAt;
}

/** The single alarm (design §5): staleness is observed, then every deadline checked. */
export function alarm(store: TargetStore, state: CoreState, now: number): CoreOutcome {
  const run = new Run(store, state, now);
  if (!state.machine.configured) return run.finish(null);
  // The alarm always decides: it is how deadlines are met.
  const staleAt = run.observe(undefined, true);
  return run.finish(staleAt);
}

/** Any other machine input (reports, delivery results, commands but `clear`). */
export function input(store: TargetStore, state: CoreState, machineInput: ShellInput, now: number): CoreOutcome {
  const run = new Run(store, state, now);
  const rejected = run.step(machineInput);
  const out = run.finish(nextStaleAt(store, state, now));
  if (rejected !== undefined) return { ...out, rejected };
  return run.warnings.length > 0 ? { ...out, warnings: run.warnings } : out;
}

/**
 * `clear` (design §4): marks a stored firing signal resolved, for a signal its source will
 * never resolve (silenced, rerouted, lost). Audited with the identity; then the sides are observed.
 */
export function clear(
  store: TargetStore,
  state: CoreState,
  key: string,
  who: { actor?: string | undefined; onBehalfOf?: string | undefined; reason?: string | undefined },
  now: number,
): CoreOutcome {
  const run = new Run(store, state, now);
  const signal = store.signal(key);
  const identity = {
    ...(who.actor !== undefined ? { actor: who.actor } : {}),
    ...(who.onBehalfOf !== undefined ? { onBehalfOf: who.onBehalfOf } : {}),
    ...(who.reason !== undefined ? { reason: who.reason } : {}),
  };
  if (signal?.status !== "firing") {
    const why = signal ? `signal ${key} is not firing` : `no stored signal with key ${key}`;
    run.event("command.rejected", { command: "clear", key, ...identity, reason: why });
    return { ...run.finish(nextStaleAt(store, state, now)), rejected: `clear: ${why}` };
  }
  // `at` moves to now, so a late re-send of the same incident stays stale; a new incident fires anew.
  run.put({ ...signal, status: "resolved", at: Math.max(signal.at, now), staleSince: null });
  const cause = run.event("signal.cleared", {
    key,
    source: signal.source,
    side: signal.side,
    incident: signal.incident,
    ...identity,
  });
  const staleAt = run.observe(cause);
  return run.finish(staleAt);
}

/**
 * A {@link TargetStore} in memory: what `npm run simulate` and the Node tests run the core on.
 * Same semantics as the Durable Object's tables: one signal per key, an append-only audit log.
 */
export class MemoryTargetStore implements TargetStore {
  readonly signals = new Map<string, StoredSignal>();
  readonly events: AuditEvent[] = [];
  signal(key: string): StoredSignal | undefined {
    return this.signals.get(key);
  }
  putSignal(signal: StoredSignal): void {
    this.signals.set(signal.key, signal);
  }
  firingSignals(): StoredSignal[] {
    return [...this.signals.values()].filter((s) => s.status === "firing");
  }
  appendEvent(event: AuditEvent): void {
    this.events.push(event);
  }
}
