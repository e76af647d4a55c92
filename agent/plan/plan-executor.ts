/**
 * The `plan` executor (design §11.2, §11.6): a team's own runbook as a list of verified steps,
 * each converging to the side the action goes to, so one list serves failover and failback
 * (`failbackSteps`, when given, serves actions to `primary`). A `{parallel: […]}` element becomes
 * steps sharing a `group`, which the runner starts together.
 *
 * Around every step: `dryRun: true` on the step makes it run as in a drill; `cluster` picks the
 * cluster it acts on, and with `ifUnreachable: "skip"` a cluster that does not answer skips the
 * step and marks it owed (the runner runs it once the cluster answers).
 */
import type { KubeConfig } from "@kubernetes/client-node";
import {
  type AgentConfig,
  type PlanElement,
  type PlanStep,
  type PlanTarget,
  parallelGroupName,
} from "../../shared/config.ts";
import type { ActionRequest } from "../../shared/protocol.ts";
import { type Executor, type Step, type StepContext, StepError, type StepOutcome } from "../executor.ts";
import { configMapReader, createDnsFlipExecutor } from "../executors/dns-flip.ts";
import { createEtcdSyncTeardownExecutor } from "../executors/etcd-sync-teardown.ts";
import { createNodeFenceExecutor } from "../executors/node-fence.ts";
import { createRouteSwapExecutor } from "../executors/route-swap.ts";
import { APPROVAL_TIMEOUT_SECONDS, runApprovalStep } from "./approval-step.ts";
import { CHECK_TIMEOUT_SECONDS, runCheckStep } from "./check-step.ts";
import { type PlanClusters, planClusters } from "./clusters.ts";
import { runExecutorStep } from "./executor-step.ts";
import { runHttpStep } from "./http-step.ts";
import { KubeObjects } from "./kube-object.ts";
import { runKubeStep } from "./kube-step.ts";
import { runRestartStep } from "./restart-step.ts";
import { runScaleStep } from "./scale-step.ts";
import { stepMemory } from "./step-memory.ts";
import { runWaitStep } from "./wait-step.ts";

/** Bound on a kube step's waitFor, a scale's and a restart's wait, unless the step sets timeoutSeconds. */
export const WAIT_TIMEOUT_SECONDS = 300;
/** Bound on one http step request. */
export const HTTP_TIMEOUT_SECONDS = 30;

export interface PlanExecutorDeps {
  /** The agent's own cluster. */
  kubeConfig: KubeConfig;
  /** For `clusters` (other kubeconfigs) and etcdSyncTeardown's `dns`, a dns-flip target's name. */
  agentConfig: Pick<AgentConfig, "targets" | "clusters">;
  /** Secrets of `headersEnv` and the DNS providers. @default process.env */
  env?: Record<string, string | undefined>;
  fetch?: typeof fetch;
  /** Interval between reads while a step waits for Kubernetes. @default 200 */
  pollMs?: number;
  /** Replaces the clusters built from `agentConfig.clusters` (tests). */
  clusters?: PlanClusters;
}

/** The list an action runs: `failbackSteps` toward primary when given, else `steps`. */
export function planList(plan: PlanTarget, action: Pick<ActionRequest, "to">): PlanElement[] {
  return action.to === "primary" && plan.failbackSteps ? plan.failbackSteps : plan.steps;
}

/** The plan's steps for an action, in order, each with its parallel group if any. */
export function flattenPlan(list: readonly PlanElement[]): { step: PlanStep; group?: string }[] {
  return list.flatMap((element, i) =>
    "parallel" in element
      ? element.parallel.map((step) => ({ step, group: element.name ?? parallelGroupName(i) }))
      : [{ step: element }],
  );
}

/** What a step writes to (or reads), to tell whether a check depends on an earlier step's write. */
export function objectKey(step: PlanStep): string | undefined {
  const k = step.kube ?? step.check?.kube;
  if (k) return [step.cluster ?? "", k.kind, k.namespace ?? "", k.name].join("/");
  if (step.scale) return [step.cluster ?? "", step.scale.kind, step.scale.namespace, step.scale.name].join("/");
  return undefined;
}

/** Creates the `plan` executor. */
export function createPlanExecutor(deps: PlanExecutorDeps): Executor<PlanTarget> {
  const env = deps.env ?? process.env;
  const pollMs = deps.pollMs ?? 200;
  const clusters = deps.clusters ?? planClusters(deps.kubeConfig, deps.agentConfig.clusters);
  const embedded = new Map<string, Executor>();
  /** One executor of each embedded kind per cluster, built on first use. */
  const executorFor = (
    kind: "routeSwap" | "dnsFlip" | "etcdSyncTeardown" | "nodeFence",
    cluster: string | undefined,
  ) => {
    const key = `${kind}/${cluster ?? ""}`;
    let e = embedded.get(key);
    if (!e) {
      const kubeConfig = clusters.kubeConfig(cluster);
      const made =
        kind === "routeSwap"
          ? createRouteSwapExecutor({ kubeConfig, ...(deps.fetch ? { fetch: deps.fetch } : {}) })
          : kind === "dnsFlip"
            ? createDnsFlipExecutor({
                env,
                readConfigMap: configMapReader(kubeConfig),
                ...(deps.fetch ? { fetch: deps.fetch } : {}),
              })
            : kind === "etcdSyncTeardown"
              ? createEtcdSyncTeardownExecutor({ kubeConfig, agentConfig: deps.agentConfig, env })
              : createNodeFenceExecutor({ kubeConfig });
      e = made as unknown as Executor;
      embedded.set(key, e);
    }
    return e;
  };

  async function runStep(ctx: StepContext, step: PlanStep, earlier: readonly PlanStep[]): Promise<StepOutcome> {
    const action = step.dryRun && !ctx.action.dryRun ? { ...ctx.action, dryRun: true } : ctx.action;
    const dryRun = action.dryRun;
    const c = { ...ctx, action };
    if (step.cluster !== undefined && !(await clusters.reachable(step.cluster))) {
      if (step.ifUnreachable !== "skip") {
        throw new StepError("cluster-unreachable", `cluster ${step.cluster} does not answer`);
      }
      if (dryRun) return { status: "skipped", detail: `dry run: cluster ${step.cluster} does not answer; skipped` };
      return {
        status: "skipped",
        owed: true,
        detail: `owed: cluster ${step.cluster} does not answer; the step runs once it answers`,
      };
    }
    const memory = stepMemory(c, step.name);
    const seconds = (d: number) => (step.timeoutSeconds ?? d) * 1000;
    const kubeConfig = clusters.kubeConfig(step.cluster);

    if (step.kube) {
      return runKubeStep({
        ctx: c,
        step: step.kube,
        objects: new KubeObjects(kubeConfig),
        memory,
        dryRun,
        timeoutMs: seconds(WAIT_TIMEOUT_SECONDS),
        pollMs,
      });
    }
    if (step.scale) {
      return runScaleStep({
        ctx: c,
        step: step.scale,
        kubeConfig,
        dryRun,
        timeoutMs: seconds(WAIT_TIMEOUT_SECONDS),
        pollMs,
      });
    }
    if (step.restart) {
      return runRestartStep({
        ctx: c,
        step: step.restart,
        kubeConfig,
        dryRun,
        timeoutMs: seconds(WAIT_TIMEOUT_SECONDS),
        pollMs,
      });
    }
    if (step.check) {
      const key = objectKey(step);
      const dryWrite = earlier.find(
        (e) => (dryRun || e.dryRun) && key !== undefined && objectKey(e) === key && !e.check,
      );
      if (dryWrite) {
        return { status: "skipped", detail: `skipped (dry run): it reads what step "${dryWrite.name}" only dry-ran` };
      }
      return runCheckStep({
        ctx: c,
        step: step.check,
        kubeConfig,
        timeoutMs: seconds(CHECK_TIMEOUT_SECONDS),
        ...(deps.fetch ? { fetch: deps.fetch } : {}),
      });
    }
    if (step.http) {
      return runHttpStep({
        ctx: c,
        name: step.name,
        step: step.http,
        memory,
        dryRun,
        env,
        timeoutMs: seconds(HTTP_TIMEOUT_SECONDS),
        ...(deps.fetch ? { fetch: deps.fetch } : {}),
      });
    }
    if (step.wait) {
      if (dryRun) return { status: "skipped", detail: `dry run: the ${step.wait.seconds} s wait is skipped` };
      return runWaitStep(c, step.wait.seconds, memory);
    }
    if (step.approval)
      return runApprovalStep(c, step.approval.message, seconds(APPROVAL_TIMEOUT_SECONDS), memory, dryRun);
    if (step.routeSwap) {
      return runExecutorStep(
        c,
        executorFor("routeSwap", step.cluster),
        { kind: "route-swap", ...step.routeSwap },
        memory,
        action,
      );
    }
    if (step.dnsFlip) {
      return runExecutorStep(
        c,
        executorFor("dnsFlip", step.cluster),
        { kind: "dns-flip", ...step.dnsFlip },
        memory,
        action,
      );
    }
    if (step.nodeFence) {
      return runExecutorStep(
        c,
        executorFor("nodeFence", step.cluster),
        { kind: "node-fence", ...step.nodeFence },
        memory,
        action,
      );
    }
    if (step.etcdSyncTeardown) {
      const settings = step.etcdSyncTeardown;
      return runExecutorStep(
        c,
        executorFor("etcdSyncTeardown", step.cluster),
        { kind: "etcd-sync-teardown", ...settings, dns: settings.dns ?? "" },
        memory,
        action,
        settings.dns === undefined ? ["flip-dns"] : [],
      );
    }
    throw new StepError("config", `step ${step.name} has no kind`);
  }

  return {
    kind: "plan",
    steps(action, target): Step<PlanTarget>[] {
      const flat = flattenPlan(planList(target, action));
      return flat.map(({ step, group }, i) => ({
        name: step.name,
        ...(group ? { group } : {}),
        run: (ctx) =>
          runStep(
            ctx,
            step,
            flat.slice(0, i).map((f) => f.step),
          ),
      }));
    },
  };
}
