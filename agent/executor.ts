/**
 * The executor interface (design §7): an executor is a named list of idempotent steps. The
 * runner (agent/runner.ts) runs them in order, records each step's status, reports at every step
 * change, and persists progress so a restarted agent resumes after the last completed step.
 *
 * A step must converge: running it again after it already succeeded (or after a crash half-way)
 * must reach the same state without doing anything twice. Dry run (`action.dryRun`) must change
 * nothing: Kubernetes writes with `dryRun=All`, DNS prerequisite-only, etcd read-only.
 */
import type { AgentTarget } from "../shared/config.ts";
import type { ActionRequest } from "../shared/protocol.ts";
import type { Logger } from "./log.ts";

/** A failure with a stable code, reported as the action's `error`. */
export class StepError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "StepError";
    this.code = code;
  }
}

/**
 * Durable per-target memory that survives agent restarts (kept in the cluster by the runner,
 * e.g. a ConfigMap per target). Values must be JSON-serializable.
 */
export interface DurableMemory {
  get<T = unknown>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown): Promise<void>;
}

/** What a step's `run` returns: a one-line detail for the report, or that it had nothing to do. */
export interface StepOutcome {
  /** One line a person reads in the report, e.g. "deleted StaticRoute primary; 3/3 nodes reported". */
  detail?: string;
  /** `skipped` when the step was not applicable (e.g. no egress check configured). */
  status?: "succeeded" | "skipped";
  /**
   * Skipped because the cluster it acts on did not answer (`ifUnreachable: "skip"`, design §11.6):
   * the step is owed, and the runner runs it again once that cluster answers.
   */
  owed?: boolean;
}

/** A `waiting` step's approval as reported (design §11.6). */
export interface WaitingApproval {
  message: string;
  /** ISO time after which the step fails `approval-timeout`. */
  deadline: string;
}

/** Who approved a waiting step, and when (ISO). */
export interface Approved {
  by: string;
  at: string;
}

export interface StepContext<T extends AgentTarget = AgentTarget> {
  readonly action: ActionRequest;
  readonly targetName: string;
  readonly target: T;
  readonly log: Logger;
  readonly memory: DurableMemory;
  /** Aborted when the agent shuts down or loses leadership; steps should stop waiting. */
  readonly signal: AbortSignal;
  /** The clock; steps never call Date.now() directly. */
  now(): number;
  /** Sleeps, resolving early (rejecting) when `signal` aborts. Tests inject a fast clock. */
  sleep(ms: number): Promise<void>;
  /** Updates the running step's detail (progress a person can follow) and re-reports. */
  progress(detail: string): void;
  /**
   * Marks the step `waiting` for a person with its approval (design §11.6) and reports it.
   * Only the runner's contexts have it (plans); test harnesses may leave it out.
   */
  waiting?(approval: WaitingApproval): void;
  /** Re-sends the current report, so the worker sees a long wait is alive (design §11.6: every 60 s). */
  keepAlive?(): void;
  /** Resolves once an operator approved this step of this action (durably recorded before it resolves). */
  approved?(): Promise<Approved>;
}

export interface Step<T extends AgentTarget = AgentTarget> {
  readonly name: string;
  /** A plan's parallel group: consecutive steps with the same group run concurrently (design §11.6). */
  readonly group?: string;
  run(ctx: StepContext<T>): Promise<StepOutcome | undefined>;
}

/** Builds the steps for one action on one target. */
export interface Executor<T extends AgentTarget = AgentTarget> {
  readonly kind: T["kind"];
  steps(action: ActionRequest, target: T): Step<T>[];
}
