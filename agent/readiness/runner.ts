/**
 * The readiness loop (design §11.3): every `readiness.intervalSeconds`, each target this agent
 * serves is evaluated, read only, toward each side it serves (the heartbeat answer's `serves`;
 * before the first answer, both sides). The latest round is what the heartbeat carries
 * ({@link Readiness.latest}) and what `/metrics` shows.
 *
 * A round never throws: a probe that fails is a failing check. Rounds never overlap: the next one
 * is scheduled after the previous one ends, so a slow DNS server cannot pile rounds up.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { type AgentConfig, SIDES, type Side } from "../../shared/config.ts";
import type { ReadinessReport, SideReadiness } from "../../shared/protocol.ts";
import type { Logger } from "../log.ts";
import { ConfigMapActionStore } from "../memory.ts";
import type { AgentMetrics } from "../metrics.ts";
import { type AccessReviewer, kubeAccessReviewer } from "./access.ts";
import { destination, isReady, type ReadinessContext } from "./check.ts";
import { defaultEvaluators, type ReadinessRegistry } from "./evaluators.ts";

/** The clock readiness runs on: tests inject a fake one. */
export interface ReadinessClock {
  /** Unix milliseconds. */
  now(): number;
  /** Resolves after `ms`, or rejects when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export interface ReadinessOptions {
  config: Pick<AgentConfig, "targets" | "namespace" | "readiness"> & Partial<Pick<AgentConfig, "clusters">>;
  kubeConfig: KubeConfig;
  log: Logger;
  clock: ReadinessClock;
  env?: Record<string, string | undefined>;
  /** The sides the worker sends this agent, per target (the heartbeat answer); undefined before one. */
  serves?: () => Record<string, readonly Side[]> | undefined;
  metrics?: Pick<AgentMetrics, "setReadiness">;
  /** Overrides for tests; each defaults to the agent's own (its credentials, its memory ConfigMaps). */
  access?: AccessReviewer;
  clusters?: ReadinessContext["clusters"];
  memory?: ReadinessContext["memory"];
  evaluators?: ReadinessRegistry;
  fetch?: typeof fetch;
  /** Bound on one probe. @default 3000 */
  timeoutMs?: number;
  /** Targets evaluated at once. @default 4 */
  concurrency?: number;
}

export interface Readiness {
  /** The latest results, limited to the sides the worker sends this agent now (what a heartbeat carries). */
  latest(): ReadinessReport;
  /** Runs one round now and returns its results. */
  evaluate(): Promise<ReadinessReport>;
  /** Starts the loop: a round at once, then one every `readiness.intervalSeconds`. */
  start(): void;
  /**
   * Stops the loop. A round in flight is not waited for (its probes are bounded by `timeoutMs`
   * and it only reads): a shutting-down agent must not wait on a hung DNS server.
   */
  stop(): Promise<void>;
}

/** Builds the readiness loop; `start()` runs it. */
export function createReadiness(options: ReadinessOptions): Readiness {
  const { config, log, clock } = options;
  const evaluators = options.evaluators ?? defaultEvaluators;
  const concurrency = Math.max(1, options.concurrency ?? 4);
  let memory = options.memory;
  if (!memory) {
    const store = new ConfigMapActionStore({
      kubeConfig: options.kubeConfig,
      namespace: config.namespace,
      log,
      targets: Object.keys(config.targets),
    });
    memory = (target) => store.memory(target);
  }
  const ctx: ReadinessContext = {
    kubeConfig: options.kubeConfig,
    config,
    env: options.env ?? process.env,
    now: () => clock.now(),
    memory,
    access: options.access ?? kubeAccessReviewer(options.kubeConfig),
    ...(options.clusters ? { clusters: options.clusters } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  };
  let report: ReadinessReport = {};
  const controller = new AbortController();
  let started = false;

  const sidesOf = (target: string): readonly Side[] => {
    const serves = options.serves?.();
    return serves ? (serves[target] ?? []) : SIDES;
  };

  async function evaluateTarget(name: string, to: Side): Promise<SideReadiness> {
    const target = config.targets[name];
    const evaluate = target ? evaluators.get(target.kind) : undefined;
    const at = new Date(clock.now()).toISOString();
    if (!target || !evaluate) {
      const check = destination("evaluator", false, `no readiness evaluator for kind ${target?.kind ?? "(none)"}`);
      return { ready: false, at, checks: [check] };
    }
    try {
      const { checks, drift } = await evaluate(name, target, to, ctx);
      return { ready: isReady(checks), at, checks, ...(drift ? { drift } : {}) };
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      return { ready: false, at, checks: [destination("evaluator", false, `the evaluation failed: ${detail}`)] };
    }
  }

  async function evaluate(): Promise<ReadinessReport> {
    const jobs = Object.keys(config.targets).flatMap((name) => sidesOf(name).map((to) => ({ name, to })));
    const next: ReadinessReport = {};
    let i = 0;
    const worker = async () => {
      for (let job = jobs[i++]; job; job = jobs[i++]) {
        const result = await evaluateTarget(job.name, job.to);
        next[job.name] = { ...next[job.name], [job.to]: result };
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
    for (const [name, sides] of Object.entries(next)) {
      for (const [to, side] of Object.entries(sides)) {
        const before = report[name]?.[to as Side];
        if (side && before?.ready !== side.ready) {
          const failing = side.checks.filter((c) => c.destination && !c.ok).map((c) => c.name);
          const fields = { target: name, to, ready: side.ready, failing };
          if (side.ready) log.info("readiness: ready", fields);
          else log.warn("readiness: not ready", fields);
        }
      }
    }
    report = next;
    options.metrics?.setReadiness(next);
    return next;
  }

  return {
    latest: () => {
      const serves = options.serves?.();
      if (!serves) return report;
      const out: ReadinessReport = {};
      for (const [name, sides] of Object.entries(report)) {
        const kept = Object.fromEntries(Object.entries(sides).filter(([to]) => serves[name]?.includes(to as Side)));
        if (Object.keys(kept).length) out[name] = kept;
      }
      return out;
    },
    evaluate,
    start: () => {
      if (started) return;
      started = true;
      void (async () => {
        while (!controller.signal.aborted) {
          await evaluate();
          if (controller.signal.aborted) return;
          try {
            await clock.sleep(config.readiness.intervalSeconds * 1000, controller.signal);
          } catch {
            return;
          }
        }
      })();
    },
    stop: async () => {
      controller.abort(new Error("readiness stopped"));
    },
  };
}
