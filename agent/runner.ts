/**
 * Runs actions (design §6, §7): looks up the executor for the target's kind, runs its steps in
 * order, persists the ActionRecord after every step change (so a restarted agent resumes after
 * the last completed step and never repeats one) and a step's progress text at most every 2 s,
 * and reports what was persisted to the worker, re-sending until acknowledged. A failed store
 * write is retried until it lands or the runner aborts, never left behind.
 *
 * Idempotency is the agent's own (QStash's dedupe window may be only 10 minutes, design §6): the
 * same id again returns the current report and never starts a second execution; a different id
 * while the target is mid-action is a conflict.
 */
import { type AgentConfig, type AgentTarget, ownTarget } from "../shared/config.ts";
import type { ActionReport, ActionRequest, ApprovalRequest, StepReport } from "../shared/protocol.ts";
import { type ActionRecord, type ActionStore, epochOf } from "./action-store.ts";
import { type Approved, type Executor, type Step, type StepContext, StepError } from "./executor.ts";
import type { Logger } from "./log.ts";
import type { AgentMetrics } from "./metrics.ts";
import { Approvals } from "./plan/approvals.ts";
import { abortableSleep, RETRY_FIRST_MS, RETRY_MAX_MS, type ReportSender } from "./report-sender.ts";

/** Executors by target kind (`route-swap`, `dns-flip`, `etcd-sync-teardown`, or a test kind). */
export type ExecutorRegistry = ReadonlyMap<string, Executor>;

/**
 * Builds a registry from executors of specific target types. The one widening cast is sound
 * because the runner only ever hands an executor targets whose `kind` equals `executor.kind`.
 */
export function executorRegistry<T extends AgentTarget>(...executors: Executor<T>[]): ExecutorRegistry {
  return new Map(executors.map((e) => [e.kind as string, e as unknown as Executor]));
}

/** Whether `request` may preempt the running action `running`: a real action over a dry run (design §6). */
function preempts(request: ActionRequest, running: ActionRecord): boolean {
  return !request.dryRun && running.request.dryRun && running.request.target === request.target;
}

/** The record of a dry run aborted for a real action: the current step and the action failed, code `preempted`. */
function preemptedRecord(record: ActionRecord, byId: string, now: number): ActionRecord {
  const at = new Date(now).toISOString();
  const next = structuredClone(record);
  const current = next.report.steps.find((s) => s.status === "running");
  for (const s of next.report.steps) {
    if (s.status === "running") Object.assign(s, { status: "failed", finishedAt: at, detail: `preempted by ${byId}` });
  }
  next.report.status = "failed";
  next.report.activeSide = next.request.from;
  next.report.error = {
    code: "preempted",
    message: `dry run preempted by the real action ${byId}${current ? ` at step "${current.name}"` : ""}; nothing was changed`,
  };
  next.report.at = at;
  next.updatedAt = at;
  next.reportDelivered = false;
  return next;
}

/** What {@link ActionRunner.submit} decided. */
export type SubmitResult =
  | { outcome: "accepted"; id: string }
  | { outcome: "duplicate"; report: ActionReport }
  | { outcome: "conflict"; runningId: string }
  /** The id's epoch is below the newest this agent accepted for the target (a replay or an overtaken message). */
  | { outcome: "stale"; latestId: string }
  | { outcome: "unknown-target" }
  | { outcome: "no-executor"; kind: string }
  /** Shutting down or no longer leading: the sender should retry (reaching the next leader). */
  | { outcome: "stopping" };

/** What {@link ActionRunner.approve} decided (design §11.6). */
export type ApproveResult =
  | { outcome: "approved"; approval: Approved }
  | { outcome: "unknown-action" }
  | { outcome: "unknown-step" }
  /** Approved before: counts as done for the worker (409). */
  | { outcome: "already-approved"; approval: Approved }
  /** The step is not waiting for an approval (409). */
  | { outcome: "not-waiting"; status: string };

/** A step skipped because its cluster did not answer, to be run once it does (design §11.6). */
export interface OwedStep {
  actionId: string;
  step: string;
  since: string;
}
const OWED_KEY = "owed-steps";

/** Consecutive steps of one parallel group form one unit; any other step is a unit alone. */
export function stepUnits<S extends { group?: string }>(steps: readonly S[]): S[][] {
  const units: S[][] = [];
  for (const step of steps) {
    const last = units.at(-1);
    if (step.group !== undefined && last?.[0]?.group === step.group) last.push(step);
    else units.push([step]);
  }
  return units;
}

export interface RunnerOptions {
  config: Pick<AgentConfig, "targets">;
  executors: ExecutorRegistry;
  store: ActionStore;
  reports: ReportSender;
  log: Logger;
  metrics?: AgentMetrics;
  /** Milliseconds since the epoch (tests inject a clock). */
  now?: () => number;
  /** Passed to steps as StepContext.sleep, and waits out the runner's own retries (tests inject a fast one). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * Least time between two writes of one action for step progress alone. Steps report progress
 * from poll loops (every 50-100 ms for minutes); each write is a ConfigMap read and replace plus
 * a report, so only the latest text is written, at most this often.
 */
const PROGRESS_INTERVAL_MS = 2000;

interface Active {
  record: ActionRecord;
  /** Bumped at every change. */
  version: number;
  /** The newest version the store has confirmed, and its report: the only one ever sent. */
  durableVersion: number;
  durableReport: ActionReport;
  /** The newest durable version the worker acknowledged. */
  deliveredVersion: number;
  controller: AbortController;
  /** The code of each step that failed in this execution (the action's error names the first). */
  failures: Map<string, string>;
  execution?: Promise<void>;
  delivery?: Promise<void>;
  /** Store writes of one action are serialized, newest last. */
  persisted: Promise<void>;
  /** The write waiting for its turn, if any: it snapshots the record when it starts. */
  queuedWrite?: Promise<void>;
  /** When the record was last changed (so written with the progress text of that moment). */
  changedAt: number;
  /** The pending write of newer progress, when the last change was too recent. */
  progressTimer?: NodeJS.Timeout;
}

/** Runs, persists and reports actions. */
export class ActionRunner {
  private readonly opts: RunnerOptions;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly active = new Map<string, Active>();
  private readonly targetLocks = new Map<string, Promise<unknown>>();
  private readonly approvals: Approvals;
  private accepting = true;
  private draining = false;
  /** Set by drain(): the process is going away, and nothing here starts again (not even on a regained Lease). */
  private shuttingDown = false;
  /** Bumped by every abortAll, so a resume that waited for one knows whether another came. */
  private aborts = 0;
  /** Settles when every abortAll called so far has finished stopping its actions. */
  private stopped: Promise<void> = Promise.resolve();

  constructor(opts: RunnerOptions) {
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    this.sleep = opts.sleep ?? abortableSleep;
    this.approvals = new Approvals((target) => opts.store.memory(target));
  }

  /**
   * Approves a waiting step (design §11.6): recorded durably, then the step goes on. A step
   * approved before, or one not waiting, is refused (the route answers 409).
   */
  approve(request: ApprovalRequest): Promise<ApproveResult> {
    const target = request.actionId.slice(0, request.actionId.lastIndexOf(":"));
    // Per target, so two approvals of one step cannot both be the first.
    return this.withTargetLock(target, async () => {
      const active = this.active.get(request.actionId);
      const record = active?.record ?? (await this.opts.store.get(target, request.actionId));
      if (!record) return { outcome: "unknown-action" };
      const entry = record.report.steps.find((s) => s.name === request.step);
      if (!entry) return { outcome: "unknown-step" };
      const prior = await this.approvals.recorded(request.actionId, target, request.step);
      if (prior) return { outcome: "already-approved", approval: prior };
      if (entry.status !== "waiting" || !active?.execution) return { outcome: "not-waiting", status: entry.status };
      const approval = await this.approvals.record(request, target, new Date(this.now()).toISOString());
      this.opts.log.info("step approved", { target, action: request.actionId, step: request.step, by: request.by });
      return { outcome: "approved", approval };
    });
  }

  /** Notes a step as owed (skipped: its cluster did not answer), in the target's durable memory. */
  private async owe(request: ActionRequest, step: string): Promise<void> {
    const memory = this.opts.store.memory(request.target);
    const owed = (await memory.get<OwedStep[]>(OWED_KEY)) ?? [];
    if (owed.some((o) => o.actionId === request.id && o.step === step)) return;
    owed.push({ actionId: request.id, step, since: new Date(this.now()).toISOString() });
    await memory.set(OWED_KEY, owed);
  }

  /** The owed steps of a target, oldest first. */
  async owedSteps(target: string): Promise<OwedStep[]> {
    return (await this.opts.store.memory(target).get<OwedStep[]>(OWED_KEY)) ?? [];
  }

  /**
   * Runs each owed step again (design §11.6): one whose cluster answers now runs and its action's
   * report is updated and re-sent (the step `succeeded`, its detail saying it was owed); one whose
   * cluster is still silent stays owed. Returns the steps that ran. Called on a timer by the leader.
   */
  async settleOwed(): Promise<OwedStep[]> {
    const ran: OwedStep[] = [];
    if (!this.accepting) return ran;
    for (const [name, target] of Object.entries(this.opts.config.targets)) {
      const executor = this.opts.executors.get(target.kind);
      if (!executor) continue;
      const memory = this.opts.store.memory(name);
      for (const owed of await this.owedSteps(name)) {
        const active = this.active.get(owed.actionId);
        if (active?.execution) continue; // its action still runs: not settled yet
        const record = active?.record ?? (await this.opts.store.get(name, owed.actionId));
        const step = record ? executor.steps(record.request, target).find((s) => s.name === owed.step) : undefined;
        const entry = record?.report.steps.find((s) => s.name === owed.step);
        if (!record || !step || !entry) {
          await this.forgetOwed(name, owed);
          continue;
        }
        const log = this.opts.log.child({ target: name, action: owed.actionId, step: owed.step, owed: true });
        const controller = new AbortController();
        const ctx: StepContext = {
          action: record.request,
          targetName: name,
          target,
          log,
          memory,
          signal: controller.signal,
          now: this.now,
          sleep: (ms) => this.sleep(ms, controller.signal),
          progress: () => undefined,
        };
        let outcome: Awaited<ReturnType<Step["run"]>>;
        try {
          outcome = await step.run(ctx);
        } catch (err) {
          log.warn("owed step failed; it stays owed", { error: err instanceof Error ? err.message : String(err) });
          continue;
        }
        if (outcome?.owed) continue;
        const at = new Date(this.now()).toISOString();
        const detail = `owed since ${owed.since}, done at ${at}${outcome?.detail ? `: ${outcome.detail}` : ""}`;
        const update = (r: ActionRecord) => {
          const e = r.report.steps.find((s) => s.name === owed.step);
          if (e) Object.assign(e, { status: outcome?.status ?? "succeeded", finishedAt: at, detail });
        };
        if (active) {
          update(active.record);
          await this.change(active);
        } else {
          update(record);
          record.report.at = at;
          record.updatedAt = at;
          record.reportDelivered = false;
          await this.opts.store.put(record);
          const a = this.track(record);
          a.version = 1;
          a.durableVersion = 1;
          a.durableReport = structuredClone(record.report);
          this.kickDelivery(a);
        }
        await this.forgetOwed(name, owed);
        log.info("owed step done", { detail });
        ran.push(owed);
      }
    }
    return ran;
  }

  private async forgetOwed(target: string, owed: OwedStep): Promise<void> {
    const memory = this.opts.store.memory(target);
    const left = ((await memory.get<OwedStep[]>(OWED_KEY)) ?? []).filter(
      (o) => o.actionId !== owed.actionId || o.step !== owed.step,
    );
    await memory.set(OWED_KEY, left);
  }

  /** Accepts an action (starting it in the background), or says why not. */
  submit(request: ActionRequest): Promise<SubmitResult> {
    // Serialize decisions per target so two concurrent deliveries cannot both start.
    return this.withTargetLock(request.target, () => this.decide(request));
  }

  /** The latest report of an action id (`<target>:<epoch>`), if known. */
  async report(actionId: string): Promise<ActionReport | undefined> {
    const active = this.active.get(actionId);
    if (active) return structuredClone(active.record.report);
    const target = actionId.slice(0, actionId.lastIndexOf(":"));
    return (await this.opts.store.get(target, actionId))?.report;
  }

  /**
   * Resumes every unfinished action from the store (after a restart or on gaining leadership):
   * running ones continue after their last completed step; finished ones whose final report was
   * never acknowledged are re-sent. Returns the ids picked up.
   */
  async resumeUnfinished(): Promise<string[]> {
    const aborts = this.aborts;
    // Leadership lost and regained quickly: the abort may still be waiting for its steps to stop,
    // and would untrack (orphan) what this resumes in the meantime.
    await this.stopped;
    if (this.aborts !== aborts) return []; // lost again meanwhile: the next gain resumes
    // Shutting down: a Lease regained (or renewed) during the drain must not start what the drain
    // is stopping. The store keeps the actions for whoever leads next.
    if (this.shuttingDown) return [];
    this.accepting = true;
    this.draining = false;
    const picked: string[] = [];
    for (const record of await this.opts.store.unfinished()) {
      const id = record.request.id;
      await this.withTargetLock(record.request.target, async () => {
        if (this.aborts !== aborts || this.active.has(id)) return;
        this.resume(record);
        picked.push(id);
      });
    }
    return picked;
  }

  /** Continues a stored action: runs what is left of a running one, re-sends the report of a finished one. */
  private resume(record: ActionRecord): void {
    const a = this.track(record);
    const id = record.request.id;
    if (record.report.status === "running") {
      this.opts.log.info("resuming action", {
        target: record.request.target,
        action: id,
        completedSteps: record.completedSteps,
      });
      this.start(a);
    } else {
      this.opts.log.info("re-sending unacknowledged report", { target: record.request.target, action: id });
      a.version = 1;
      a.durableVersion = 1;
      this.kickDelivery(a);
    }
  }

  /**
   * Resumes a record the store calls running that nothing here executes. On an accepting leader
   * every running action executes (resumeUnfinished picked them up), so this is one whose first
   * write reported a failure yet landed: answering "duplicate" (same id) or "conflict" (new id)
   * without running it would leave the target stuck until the Lease moved.
   */
  private adoptOrphan(record: ActionRecord): void {
    if (record.report.status !== "running" || !this.accepting || this.active.has(record.request.id)) return;
    this.opts.log.warn("found a running action nothing executes", {
      target: record.request.target,
      action: record.request.id,
    });
    this.resume(record);
  }

  /**
   * Aborts running steps and report deliveries (shutdown, lost leadership) and waits for them to
   * stop. The store keeps the actions unfinished, so whoever leads next resumes them.
   */
  async abortAll(reason: string): Promise<void> {
    this.accepting = false;
    this.aborts += 1;
    const all = [...this.active.values()];
    for (const a of all) {
      a.controller.abort(new Error(reason));
      clearTimeout(a.progressTimer);
    }
    const stopping = Promise.allSettled(all.flatMap((a) => [a.execution, a.delivery, a.persisted])).then(() => {
      for (const a of all) this.untrack(a);
    });
    this.stopped = Promise.all([this.stopped, stopping]).then(() => undefined);
    await stopping;
  }

  /**
   * Graceful stop (SIGTERM): accept nothing new, let each running step finish (no further step
   * starts), and abort whatever is still running after `graceMs`. Unfinished actions stay in the
   * store and resume on the next leader.
   */
  async drain(graceMs: number): Promise<void> {
    this.shuttingDown = true;
    this.accepting = false;
    this.draining = true;
    const executions = [...this.active.values()].flatMap((a) => (a.execution ? [a.execution] : []));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(executions),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(timer);
    await this.abortAll("agent shutting down");
  }

  /** False once the runner is draining or aborted (new actions get 503). */
  isAccepting(): boolean {
    return this.accepting;
  }

  /** Resolves when every execution and delivery in flight has settled (tests, shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      const pending = [...this.active.values()].flatMap((a) => [a.execution, a.delivery, a.persisted]);
      if (pending.length === 0) return;
      await Promise.allSettled(pending);
      if ([...this.active.values()].every((a) => !a.execution && !a.delivery)) return;
    }
  }

  /** Whether any action is executing on this replica. */
  executing(): string[] {
    return [...this.active.values()].filter((a) => a.execution).map((a) => a.record.request.id);
  }

  private async withTargetLock<T>(target: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.targetLocks.get(target) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    this.targetLocks.set(
      target,
      next.catch(() => undefined),
    );
    return next;
  }

  private async decide(request: ActionRequest): Promise<SubmitResult> {
    const { store, config, executors } = this.opts;
    const target = ownTarget(config.targets, request.target);
    if (!target) return { outcome: "unknown-target" };
    const executor = executors.get(target.kind);
    if (!executor) return { outcome: "no-executor", kind: target.kind };

    const known = this.active.get(request.id);
    if (known) return { outcome: "duplicate", report: structuredClone(known.record.report) };
    const stored = await store.get(request.target, request.id);
    if (stored) {
      this.adoptOrphan(stored);
      return { outcome: "duplicate", report: structuredClone(stored.report) };
    }

    // The epoch floor (design §6): the store keeps the newest record of each target, so the floor
    // survives restarts; an older epoch is a replay (QStash accepts it for hours) or overtaken.
    const newest = await store.latest(request.target);
    if (newest && epochOf(request.id) < epochOf(newest.request.id)) {
      return { outcome: "stale", latestId: newest.request.id };
    }
    let preempted = false;
    for (const a of this.active.values()) {
      if (a.record.request.target === request.target && a.record.report.status === "running") {
        // Design §6: a real action preempts a running dry run; anything else is a conflict.
        if (!preempts(request, a.record)) return { outcome: "conflict", runningId: a.record.request.id };
        await this.preempt(a, request.id);
        preempted = true;
      }
    }
    // Read again only after a preemption, which has just written the dry run's final record.
    const latest = preempted ? await store.latest(request.target) : newest;
    if (latest && latest.report.status === "running") {
      if (preempts(request, latest)) {
        // A dry run the store calls running that nothing here executes: close it as preempted.
        await store.put(preemptedRecord(latest, request.id, this.now()));
      } else {
        this.adoptOrphan(latest);
        return { outcome: "conflict", runningId: latest.request.id };
      }
    }
    if (!this.accepting) return { outcome: "stopping" };

    const record = this.newRecord(request, executor, target, latest);
    const a = this.track(record);
    a.version = 1;
    try {
      // One attempt (the store retries conflicts itself); on failure the sender's retry decides again.
      const snapshot = structuredClone(record);
      await store.put(snapshot);
      this.stored(a, snapshot, a.version);
    } catch (err) {
      this.untrack(a);
      throw err;
    }
    // Logged once, by the HTTP route that took it ("action accepted", with how it came).
    this.start(a);
    return { outcome: "accepted", id: request.id };
  }

  /**
   * Aborts a running dry run at its current step and reports it `failed` with code `preempted`
   * (design §6), so the real action that preempts it can start at once.
   */
  private async preempt(a: Active, byId: string): Promise<void> {
    const log = this.opts.log.child({ target: a.record.request.target, action: a.record.request.id });
    log.warn("dry run preempted by a real action", { by: byId });
    a.controller.abort(new Error(`preempted by ${byId}`));
    clearTimeout(a.progressTimer);
    await Promise.allSettled([a.execution, a.delivery, a.persisted]);
    // The old controller is spent; the failed report still needs storing and delivering.
    a.controller = new AbortController();
    a.record = preemptedRecord(a.record, byId, this.now());
    await this.change(a).catch((err: unknown) => log.warn("could not record the preemption", { error: String(err) }));
  }

  private newRecord(
    request: ActionRequest,
    executor: Executor,
    target: AgentTarget,
    previous: ActionRecord | undefined,
  ): ActionRecord {
    const names = executor.steps(request, target).map((s) => s.name);
    // A new id after a failed action of the same switch (the worker's `retry`) resumes where the
    // failed one stopped: its completed steps are not run again (design §7: steps converge, but
    // re-running a slow, verified step buys nothing).
    const carry =
      previous &&
      previous.report.status === "failed" &&
      previous.request.kind === request.kind &&
      previous.request.from === request.from &&
      previous.request.to === request.to &&
      previous.request.dryRun === request.dryRun
        ? previous
        : undefined;
    const completed = carry ? carry.completedSteps.filter((n) => names.includes(n)) : [];
    const steps: StepReport[] = names.map((name) => {
      const done = completed.includes(name) ? carry?.report.steps.find((s) => s.name === name) : undefined;
      return done
        ? { ...done, detail: `done by ${carry?.request.id}${done.detail ? `: ${done.detail}` : ""}` }
        : { name, status: "pending" };
    });
    const at = new Date(this.now()).toISOString();
    return {
      request,
      report: {
        actionId: request.id,
        target: request.target,
        status: "running",
        activeSide: request.from,
        dryRun: request.dryRun,
        steps,
        at,
      },
      completedSteps: completed,
      reportDelivered: false,
      updatedAt: at,
    };
  }

  private track(record: ActionRecord): Active {
    const a: Active = {
      record,
      version: 0,
      // A record from the store is durable as it stands.
      durableVersion: 0,
      durableReport: structuredClone(record.report),
      deliveredVersion: 0,
      controller: new AbortController(),
      failures: new Map(),
      persisted: Promise.resolve(),
      changedAt: Number.NEGATIVE_INFINITY,
    };
    this.active.set(record.request.id, a);
    this.updateInProgress();
    return a;
  }

  /** Runs the action's remaining steps; the in-progress gauge counts it from now on. */
  private start(a: Active): void {
    a.execution = this.execute(a);
    this.updateInProgress();
  }

  private untrack(a: Active): void {
    if (this.active.get(a.record.request.id) === a) this.active.delete(a.record.request.id);
    this.updateInProgress();
  }

  private updateInProgress(): void {
    this.opts.metrics?.setInProgress(this.executing().length);
  }

  /** Records a change: bumps the version, persists, and (re)starts report delivery. */
  private change(a: Active): Promise<void> {
    // This write carries the latest progress text too.
    clearTimeout(a.progressTimer);
    a.progressTimer = undefined;
    a.changedAt = this.now();
    const at = new Date(a.changedAt).toISOString();
    a.record.report.at = at;
    a.record.updatedAt = at;
    a.record.reportDelivered = false;
    a.version += 1;
    const done = this.persist(a);
    // Report only what is durable: a report must never claim a step the store would forget.
    done.then(
      () => this.kickDelivery(a),
      () => undefined,
    );
    return done;
  }

  /**
   * Writes the record after the writes before it. A write still waiting for its turn takes its
   * snapshot when it starts, so it carries this change too: however often the record changes
   * (and however long the store fails), one write runs and at most one waits.
   */
  private persist(a: Active): Promise<void> {
    if (a.queuedWrite) return a.queuedWrite;
    const next = a.persisted
      .catch(() => undefined)
      .then(() => {
        a.queuedWrite = undefined;
        const snapshot = structuredClone(a.record);
        const version = a.version;
        return this.putUntilStored(a, snapshot).then(() => this.stored(a, snapshot, version));
      });
    a.queuedWrite = next;
    a.persisted = next;
    return next;
  }

  /**
   * Writes new progress text now if the record has not changed for {@link PROGRESS_INTERVAL_MS},
   * else once that much time has passed (unless a step change writes it first).
   */
  private progressed(a: Active, log: Logger): void {
    if (a.progressTimer || a.controller.signal.aborted) return;
    const write = () => {
      a.progressTimer = undefined;
      if (a.controller.signal.aborted) return;
      this.change(a).catch((err: unknown) => log.warn("could not record progress", { error: String(err) }));
    };
    const wait = a.changedAt + PROGRESS_INTERVAL_MS - this.now();
    if (wait <= 0) write();
    else a.progressTimer = setTimeout(write, wait);
  }

  /** Notes that the store holds `snapshot` (change `version`): from now on it may be reported. */
  private stored(a: Active, snapshot: ActionRecord, version: number): void {
    if (version > a.durableVersion) {
      a.durableVersion = version;
      a.durableReport = snapshot.report;
    }
  }

  /**
   * Writes a record, retrying a failed write (an API error, or conflicts the store gave up on)
   * with capped backoff until it lands or the action is aborted. Giving up would strand the
   * action: "running" in the store, nothing executing it, every new delivery a duplicate or 409.
   */
  private async putUntilStored(a: Active, record: ActionRecord): Promise<void> {
    const signal = a.controller.signal;
    for (let retryInMs = RETRY_FIRST_MS; ; retryInMs = Math.min(RETRY_MAX_MS, retryInMs * 2)) {
      try {
        await this.opts.store.put(record);
        return;
      } catch (err) {
        if (signal.aborted) throw err;
        this.opts.log.warn("could not store the action record; retrying", {
          target: record.request.target,
          action: record.request.id,
          error: String(err),
          retryInMs,
        });
        await this.sleep(retryInMs, signal);
      }
    }
  }

  /**
   * Starts delivering the newest durable report unless a delivery is under way. A delivery that
   * threw (the sender is meant never to) is retried after a capped backoff: restarting it at once
   * starved the event loop until the heap ran out.
   */
  private kickDelivery(a: Active, retryInMs = RETRY_FIRST_MS): void {
    if (a.delivery || a.controller.signal.aborted) return;
    a.delivery = this.deliveryLoop(a).then(
      () => {
        a.delivery = undefined;
        // A change that landed while the last attempt was in flight needs another round.
        if (a.deliveredVersion < a.durableVersion && !a.controller.signal.aborted) this.kickDelivery(a);
        else this.maybeForget(a);
      },
      async (err: unknown) => {
        this.opts.log.error("report delivery failed; retrying", {
          action: a.record.request.id,
          error: String(err),
          retryInMs,
        });
        // Still the action's delivery while it waits, so an abort ends (and awaits) the wait.
        await this.sleep(retryInMs, a.controller.signal).catch(() => undefined);
        a.delivery = undefined;
        this.kickDelivery(a, Math.min(RETRY_MAX_MS, retryInMs * 2));
      },
    );
  }

  private async deliveryLoop(a: Active): Promise<void> {
    // Only what the store confirmed is reported: the worker must never hear of a step that a
    // crash right now would make the agent forget (and run again).
    while (a.deliveredVersion < a.durableVersion && !a.controller.signal.aborted) {
      let sentVersion = a.durableVersion;
      const acked = await this.opts.reports.deliver(() => {
        sentVersion = a.durableVersion;
        return structuredClone(a.durableReport);
      }, a.controller.signal);
      if (!acked) return;
      a.deliveredVersion = Math.max(a.deliveredVersion, sentVersion);
    }
    if (a.deliveredVersion >= a.version && a.record.report.status !== "running" && !a.record.reportDelivered) {
      a.record.reportDelivered = true;
      await this.persist(a).catch((err: unknown) =>
        this.opts.log.warn("could not record report delivery", { action: a.record.request.id, error: String(err) }),
      );
    }
  }

  private maybeForget(a: Active): void {
    if (!a.execution && !a.delivery && a.record.report.status !== "running" && a.record.reportDelivered) {
      this.untrack(a);
    }
  }

  private async execute(a: Active): Promise<void> {
    try {
      await this.runSteps(a);
    } catch (err) {
      const action = a.record.request.id;
      if (a.controller.signal.aborted) {
        // Shutdown or lost leadership (store writes are retried until then): the action stays
        // unfinished in the store and resumes on the next leader.
        this.opts.log.warn("action stopped; it resumes on the next leader", { action, error: String(err) });
      } else {
        // Neither a step failure (reported) nor a store error (retried), e.g. the executor's steps()
        // threw for a resumed action: let go of it, so the next delivery adopts it again.
        this.opts.log.error("action interrupted; the next delivery restarts it", { action, error: String(err) });
        a.controller.abort(err);
        this.untrack(a);
      }
    } finally {
      a.execution = undefined;
      this.updateInProgress();
      this.maybeForget(a);
    }
  }

  private async runSteps(a: Active): Promise<void> {
    const { request } = a.record;
    const log = this.opts.log.child({ target: request.target, action: request.id });
    const target = ownTarget(this.opts.config.targets, request.target);
    const executor = target ? this.opts.executors.get(target.kind) : undefined;
    const report = a.record.report;
    if (!target || !executor) {
      report.status = "failed";
      report.error = { code: "unknown-target", message: `target ${request.target} is not configured on this agent` };
      await this.change(a);
      return;
    }
    const steps = executor.steps(request, target);
    // Align the report with the executor's steps (a resumed action keeps what it recorded).
    report.steps = steps.map((s) => {
      const entry = report.steps.find((r) => r.name === s.name) ?? { name: s.name, status: "pending" as const };
      return s.group ? { ...entry, group: s.group } : entry;
    });
    if (a.version === 1) this.kickDelivery(a); // the initial "accepted, all pending" report

    // Consecutive steps of one parallel group run together (design §11.6); others one by one.
    for (const unit of stepUnits(steps)) {
      if (a.controller.signal.aborted || this.draining) return;
      const todo = unit.filter((s) => !a.record.completedSteps.includes(s.name));
      if (todo.length === 0) continue;
      // A failing sibling never cuts another mid-write: each runs to its end, then the group fails.
      const results = await Promise.all(todo.map((step) => this.runStep(a, target, step, log)));
      if (results.includes("aborted")) return;
      const failed = todo.find((_, i) => results[i] === "failed");
      if (failed) {
        const entry = report.steps.find((r) => r.name === failed.name);
        report.status = "failed";
        delete report.activeSide;
        const code = a.failures.get(failed.name) ?? "internal";
        report.error = {
          code,
          message: `step "${failed.name}" failed: ${entry?.detail ?? ""}; a retry resumes from step "${failed.name}"`,
        };
        this.opts.metrics?.actionFinished(request.kind, target.kind, "failed");
        await this.change(a);
        return;
      }
    }

    report.status = "succeeded";
    report.activeSide = request.dryRun ? request.from : request.to;
    delete report.error;
    this.opts.metrics?.actionFinished(request.kind, target.kind, "succeeded");
    log.info("action succeeded", { activeSide: report.activeSide, dryRun: request.dryRun });
    await this.change(a);
  }

  /** Runs one step and records its end; "failed" leaves the action's error to the caller. */
  private async runStep(
    a: Active,
    target: AgentTarget,
    step: Step,
    log: Logger,
  ): Promise<"succeeded" | "failed" | "aborted"> {
    const { request } = a.record;
    const entry = a.record.report.steps.find((r) => r.name === step.name);
    if (!entry) return "succeeded";
    entry.status = "running";
    entry.startedAt = new Date(this.now()).toISOString();
    delete entry.finishedAt;
    delete entry.detail;
    delete entry.approval;
    await this.change(a);

    const started = this.now();
    let outcome: Awaited<ReturnType<Step["run"]>>;
    try {
      outcome = await step.run(this.context(a, target, entry, log.child({ step: step.name })));
    } catch (err) {
      if (a.controller.signal.aborted) {
        // Shutdown or lost leadership: the step did not fail; it reruns (idempotently) on resume.
        log.warn("step interrupted; it will resume", { step: step.name });
        return "aborted";
      }
      const code = err instanceof StepError ? err.code : "internal";
      const message = err instanceof Error ? err.message : String(err);
      entry.status = "failed";
      entry.finishedAt = new Date(this.now()).toISOString();
      entry.detail = message;
      delete entry.approval;
      a.failures.set(step.name, code);
      this.opts.metrics?.stepObserved(target.kind, step.name, "failed", (this.now() - started) / 1000);
      log.error("step failed", { step: step.name, code, error: message });
      return "failed";
    }
    const status = outcome?.status ?? "succeeded";
    entry.status = status;
    entry.finishedAt = new Date(this.now()).toISOString();
    delete entry.approval;
    if (outcome?.detail !== undefined) entry.detail = outcome.detail;
    if (outcome?.owed) await this.owe(request, step.name);
    a.record.completedSteps.push(step.name);
    this.opts.metrics?.stepObserved(target.kind, step.name, status, (this.now() - started) / 1000);
    log.info("step finished", { step: step.name, status, detail: entry.detail });
    await this.change(a);
    return "succeeded";
  }

  private context(a: Active, target: AgentTarget, entry: StepReport, log: Logger): StepContext {
    const signal = a.controller.signal;
    return {
      action: a.record.request,
      targetName: a.record.request.target,
      target,
      log,
      memory: this.opts.store.memory(a.record.request.target),
      signal,
      now: this.now,
      sleep: (ms) => this.sleep(ms, signal),
      progress: (detail) => {
        entry.detail = detail;
        this.progressed(a, log);
      },
      waiting: (approval) => {
        entry.status = "waiting";
        entry.approval = approval;
        this.change(a).catch((err: unknown) => log.warn("could not record the wait", { error: String(err) }));
      },
      keepAlive: () => {
        this.change(a).catch((err: unknown) => log.warn("could not re-send the report", { error: String(err) }));
      },
      approved: () => this.approvals.wait(a.record.request, entry.name, signal),
    };
  }
}

/**
 * Ties the runner to the Lease: on gaining leadership it resumes unfinished actions from the
 * store; on losing it, it aborts running steps (they resume on whichever replica leads next).
 * Returns the unsubscribe function.
 */
export function followLeadership(
  leadership: { isLeader(): boolean; onChange(listener: (s: { leader: boolean }) => void): () => void },
  runner: ActionRunner,
  log: Logger,
  metrics?: AgentMetrics,
): () => void {
  let leading = leadership.isLeader();
  metrics?.setLeader(leading);
  return leadership.onChange((state) => {
    metrics?.setLeader(state.leader);
    if (state.leader === leading) return;
    leading = state.leader;
    if (state.leader) {
      log.info("became leader; resuming unfinished actions");
      runner
        .resumeUnfinished()
        .then((ids) => ids.length && log.info("resumed", { actions: ids }))
        .catch((err: unknown) => log.error("resume failed", { error: String(err) }));
    } else {
      log.warn("lost leadership; stopping running steps");
      runner.abortAll("lost leadership").catch((err: unknown) => log.error("abort failed", { error: String(err) }));
    }
  });
}
