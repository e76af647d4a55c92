/**
 * The `etcd-sync-teardown` executor (runbook C, design §7): the global-cluster DR switch.
 *
 * Steps: consistency → stop-sync → flip-dns → restart → follow-ups.
 * - consistency: measures missed / surplus / differing keys and heartbeat lag between the etcd
 *   being left and the one taking over (agent/etcd/consistency.ts); refuses an inconsistent
 *   standby unless forced and an unreachable primary unless `allowUnverified` or forced, saying
 *   which in the detail. The verdict is remembered per action: once the sync is stopped the
 *   heartbeat lag grows by design, so a resumed action must not re-judge it.
 * - stop-sync: scales the synchronizer Deployment to 0 (merge patch of spec.replicas) or deletes
 *   it, then waits until its pods are gone (terminating ones too), bounded. A Deployment that is
 *   not there fails the step unless forced (a wrong name must not pass for a stopped sync), except
 *   when this switch deleted it: then its pods, by the selector remembered before the delete,
 *   are waited for again.
 * - flip-dns: the named dns-flip target's flip to the action's `to` side, with its verification
 *   (agent/executors/dns-flip.ts `flipDns`, which is a no-op when the record already holds it).
 * - restart: kubectl-style rollout restart (strategic merge patch of the pod template's
 *   `kubectl.kubernetes.io/restartedAt` annotation, real-components §3) of each workload, marked
 *   with `turnout.dev/restarted-by: <action id>` so neither a resumed action nor a retry of the
 *   same switch (see {@link Switch}) restarts it twice, then waits for every rollout to complete,
 *   bounded by `restartTimeoutSeconds`.
 * - follow-ups: the manual steps turnout cannot do, as a checklist in the report; ends the switch.
 *
 * Direction: a failover (to `secondary`) checks etcd.primary → etcd.standby; a failback (to
 * `primary`) checks the reverse, i.e. the reverse sync a person set up after the failover
 * (runbook C step 7). Dry run: the consistency check runs for real (it only reads), every
 * Kubernetes write is sent with `dryRun=All` and not waited for, DNS is prerequisite-only.
 */
import * as k8s from "@kubernetes/client-node";
import type { AgentConfig, DnsFlipTarget, EtcdSyncTeardownTarget } from "../../shared/config.ts";
import type { ActionRequest } from "../../shared/protocol.ts";
import {
  type ConsistencyOptions,
  type ConsistencyResult,
  checkConsistency,
  consistencyOptionsFor,
  decideConsistency,
} from "../etcd/consistency.ts";
import { type Executor, type Step, type StepContext, StepError } from "../executor.ts";
import { apiErrorText, dryRunOption, isApiStatus, labelSelector, unlessNotFound } from "../kube-api.ts";
import { flipDns } from "./dns-flip.ts";

/** Pod-template annotation kubectl's `rollout restart` sets (kubectl/pkg/polymorphichelpers/objectrestarter.go). */
export const RESTARTED_AT = "kubectl.kubernetes.io/restartedAt";
/** Pod-template annotation naming the action that restarted the workload (idempotency marker). */
export const RESTARTED_BY = "turnout.dev/restarted-by";

type Workload = EtcdSyncTeardownTarget["restart"][number];

/** What the executor needs from outside. */
export interface EtcdSyncTeardownDeps {
  /** The agent's Kubernetes credentials. */
  kubeConfig: k8s.KubeConfig;
  /** The whole agent config, to resolve the `dns` target by name. */
  agentConfig: Pick<AgentConfig, "targets">;
  /** Secrets for the DNS provider (TSIG / API tokens). @default process.env */
  env?: Record<string, string | undefined>;
  /** For HTTP DNS providers. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Interval between Kubernetes reads while waiting. @default 100 */
  pollMs?: number;
  /** Bound on waiting for the synchronizer's pods to go. @default 120 */
  stopSyncTimeoutSeconds?: number;
  /** Delay between DNS verify rounds. @default 500 */
  verifyIntervalMs?: number;
  /** Deadline of each etcd call in ms (bounds the unreachable-primary case). @default 3000 */
  etcdCallTimeoutMs?: number;
  /** Replaces the real check (tests of the other steps only). */
  checkConsistency?: (options: ConsistencyOptions) => Promise<ConsistencyResult>;
}

interface RememberedCheck {
  detail: string;
}

const consistencyKey = (action: ActionRequest) => `etcd-sync-teardown/${action.id}/consistency`;
/** Per target: which action stopped the synchronizer, when, towards which side. */
const SYNC_STOPPED_KEY = "etcd-sync-teardown/sync-stopped";

interface SyncStopped {
  actionId: string;
  to: string;
  at: string;
}

/**
 * Per target: the switch the latest actions belong to, i.e. which action ids worked on one move
 * from `from` to `to`. The worker's `retry` of a failed action sends a new id (reason "retry of
 * <id>: …"), and the runner resumes it where the failed one stopped when kind, from and to match
 * (agent/runner.ts `newRecord`); the executor follows the same rule, so a workload restarted by
 * the failed action counts as restarted for its retries too. A switch ends when its last step
 * (follow-ups) succeeds: a later action, even in the same direction, is a new switch and restarts
 * again.
 */
interface Switch {
  kind: string;
  from: string;
  to: string;
  actionIds: string[];
  finished: boolean;
  /** The synchronizer Deployment an action of this switch deleted, with its pods' selector. */
  syncDeleted?: { actionId: string; namespace: string; name: string; matchLabels: Record<string, string> };
}
const SWITCH_KEY = "etcd-sync-teardown/switch";

/** The switch `ctx.action` belongs to, recorded (dry runs only read it). */
async function joinSwitch(ctx: StepContext<EtcdSyncTeardownTarget>): Promise<Switch> {
  const { action } = ctx;
  const current = await ctx.memory.get<Switch>(SWITCH_KEY);
  if (current?.actionIds.includes(action.id)) return current;
  const continues =
    current !== undefined &&
    !current.finished &&
    current.kind === action.kind &&
    current.from === action.from &&
    current.to === action.to;
  const next: Switch = continues
    ? { ...current, actionIds: [...current.actionIds, action.id] }
    : { kind: action.kind, from: action.from, to: action.to, actionIds: [action.id], finished: false };
  if (!action.dryRun) await ctx.memory.set(SWITCH_KEY, next);
  return next;
}

/** Runs a Kubernetes call, turning an API failure into a StepError that names what was attempted. */
async function kube<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StepError) throw err;
    throw new StepError("kubernetes", `${what}: ${apiErrorText(err, "HTTP")}`);
  }
}

/** The reads and writes the executor makes (each one named in agent/deploy RBAC). */
class Workloads {
  private readonly apps: k8s.AppsV1Api;
  private readonly core: k8s.CoreV1Api;

  constructor(kc: k8s.KubeConfig) {
    this.apps = kc.makeApiClient(k8s.AppsV1Api);
    this.core = kc.makeApiClient(k8s.CoreV1Api);
  }

  async readDeployment(namespace: string, name: string): Promise<k8s.V1Deployment | undefined> {
    return unlessNotFound(this.apps.readNamespacedDeployment({ namespace, name }));
  }

  /**
   * Through the `scale` subresource (design §7), so the Role grants `deployments/scale` and no
   * `patch` of the synchronizer's Deployment, which could change its image or command.
   */
  async scaleDeploymentToZero(namespace: string, name: string, dryRun: boolean): Promise<void> {
    await this.apps.patchNamespacedDeploymentScale(
      { namespace, name, body: { spec: { replicas: 0 } }, ...dryRunOption(dryRun) },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
  }

  async deleteDeployment(namespace: string, name: string, dryRun: boolean): Promise<void> {
    try {
      await this.apps.deleteNamespacedDeployment({
        namespace,
        name,
        propagationPolicy: "Background",
        ...dryRunOption(dryRun),
      });
    } catch (err) {
      if (!isApiStatus(err, 404)) throw err;
    }
  }

  /**
   * Pods matching a selector. Terminating pods count: their containers (the mirror) keep running
   * until the grace period ends, so a synchronizer is stopped only when its pods are gone.
   */
  async listPods(
    namespace: string,
    matchLabels: Record<string, string>,
  ): Promise<{ total: number; terminating: number }> {
    const selector = labelSelector(matchLabels);
    if (!selector) return { total: 0, terminating: 0 };
    const list = await this.core.listNamespacedPod({ namespace, labelSelector: selector });
    const terminating = list.items.filter((p) => p.metadata?.deletionTimestamp).length;
    return { total: list.items.length, terminating };
  }

  async read(w: Workload): Promise<k8s.V1Deployment | k8s.V1StatefulSet | k8s.V1DaemonSet | undefined> {
    const ref = { namespace: w.namespace, name: w.name };
    if (w.kind === "Deployment") return unlessNotFound(this.apps.readNamespacedDeployment(ref));
    if (w.kind === "StatefulSet") return unlessNotFound(this.apps.readNamespacedStatefulSet(ref));
    return unlessNotFound(this.apps.readNamespacedDaemonSet(ref));
  }

  /** kubectl rollout restart: a strategic merge patch of the pod template's annotations. */
  async restart(w: Workload, annotations: Record<string, string>, dryRun: boolean): Promise<void> {
    const req = {
      namespace: w.namespace,
      name: w.name,
      body: { spec: { template: { metadata: { annotations } } } },
      ...dryRunOption(dryRun),
    };
    const opts = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.StrategicMergePatch);
    if (w.kind === "Deployment") await this.apps.patchNamespacedDeployment(req, opts);
    else if (w.kind === "StatefulSet") await this.apps.patchNamespacedStatefulSet(req, opts);
    else await this.apps.patchNamespacedDaemonSet(req, opts);
  }
}

/** Whether a workload's rollout is complete (kubectl rollout status's conditions), and why not. */
export function rolloutState(
  kind: Workload["kind"],
  obj: k8s.V1Deployment | k8s.V1StatefulSet | k8s.V1DaemonSet,
): { done: boolean; detail: string } {
  const generation = obj.metadata?.generation ?? 0;
  const observed = obj.status?.observedGeneration ?? 0;
  if (observed < generation)
    return { done: false, detail: `observedGeneration ${observed} < generation ${generation}` };
  if (kind === "DaemonSet") {
    const s = (obj as k8s.V1DaemonSet).status;
    const desired = s?.desiredNumberScheduled ?? 0;
    const updated = s?.updatedNumberScheduled ?? 0;
    const ready = s?.numberReady ?? 0;
    return { done: updated === desired && ready === desired, detail: `${updated}/${desired} updated, ${ready} ready` };
  }
  const o = obj as k8s.V1Deployment | k8s.V1StatefulSet;
  const want = o.spec?.replicas ?? 1;
  const total = o.status?.replicas ?? 0;
  const updated = o.status?.updatedReplicas ?? 0;
  const ready = o.status?.readyReplicas ?? 0;
  return {
    // `total === want`: old pods must be gone too, or the restart is still in progress.
    done: updated === want && ready === want && total === want,
    detail: `${updated}/${want} updated, ${ready} ready, ${total} total`,
  };
}

const label = (w: { kind: string; namespace: string; name: string }) => `${w.kind} ${w.namespace}/${w.name}`;

/** Creates the `etcd-sync-teardown` executor. */
export function createEtcdSyncTeardownExecutor(deps: EtcdSyncTeardownDeps): Executor<EtcdSyncTeardownTarget> {
  const cluster = new Workloads(deps.kubeConfig);
  const pollMs = deps.pollMs ?? 100;
  const check = deps.checkConsistency ?? checkConsistency;

  const consistency: Step<EtcdSyncTeardownTarget> = {
    name: "consistency",
    async run(ctx) {
      const { action, target } = ctx;
      const remembered = await ctx.memory.get<RememberedCheck>(consistencyKey(action));
      if (remembered) return { detail: `already checked for this action: ${remembered.detail}` };
      const base = consistencyOptionsFor(target.etcd, () => ctx.now());
      // Failback reads the reverse direction (see the module comment).
      const options: ConsistencyOptions =
        action.to === "primary"
          ? { ...base, primaryEndpoints: base.standbyEndpoints, standbyEndpoints: base.primaryEndpoints }
          : base;
      ctx.progress("comparing key sets and heartbeat lag");
      const result = await check({
        ...options,
        callTimeoutMs: deps.etcdCallTimeoutMs,
        // A large keyspace takes seconds; tell the reader it moves (the runner writes the latest
        // progress text at most every 2 s, so every page may report).
        onPage: (side, keys) => ctx.progress(`read ${keys} keys on the ${side}`),
      });
      const decision = decideConsistency(result, { force: action.force, allowUnverified: target.allowUnverified });
      ctx.log.info("etcd consistency", {
        ok: result.ok,
        verified: result.verified,
        missed: result.missed.count,
        surplus: result.surplus.count,
        differing: result.differing.count,
        lagSeconds: result.heartbeat?.lagSeconds ?? null,
        proceed: decision.proceed,
      });
      if (!decision.proceed) {
        // A new action after an earlier one stopped the sync (e.g. a retry after a later step
        // failed) sees the standby fall behind by design; say so, so the person can force.
        const stopped = await ctx.memory.get<SyncStopped>(SYNC_STOPPED_KEY);
        const hint =
          stopped && stopped.actionId !== action.id && stopped.to === action.to
            ? `; note: ${stopped.actionId} stopped the synchronizer at ${stopped.at}, so the standby is expected to lag since then (force to proceed)`
            : "";
        throw new StepError(decision.code, `${decision.message}${hint}`);
      }
      // Dry runs are not remembered: a later real action with the same id does not exist, and a
      // drill must measure every time.
      if (!action.dryRun) await ctx.memory.set(consistencyKey(action), { detail: decision.detail });
      return { detail: decision.detail };
    },
  };

  const stopSync: Step<EtcdSyncTeardownTarget> = {
    name: "stop-sync",
    async run(ctx) {
      const { sync } = ctx.target;
      const { action } = ctx;
      const dryRun = action.dryRun;
      const what = label(sync);
      const current = await joinSwitch(ctx);
      const dep = await kube(`read ${what}`, () => cluster.readDeployment(sync.namespace, sync.name));
      let matchLabels: Record<string, string>;
      let did: string;
      if (!dep) {
        // Absent is success only when this switch deleted it; its pods may still be terminating,
        // so they are waited for below with the selector remembered before the delete.
        const deleted = sync.action === "delete" ? current.syncDeleted : undefined;
        if (deleted?.namespace === sync.namespace && deleted.name === sync.name) {
          matchLabels = deleted.matchLabels;
          did = `already deleted by ${deleted.actionId}`;
        } else {
          // Nothing to stop means nothing was stopped: after a typo in the name the real
          // synchronizer would keep mirroring into the standby after the DNS flip.
          const missing = `${what} not found, so no synchronizer was stopped (check the target's sync kind, namespace and name)`;
          if (!action.force) throw new StepError("sync-not-found", `${missing}; force to proceed without stopping it`);
          return { detail: `FORCED: proceeding although ${missing}` };
        }
      } else {
        matchLabels = dep.spec?.selector?.matchLabels ?? {};
        if (sync.action === "delete") {
          // Remembered before the delete: a resumed step finds the Deployment gone and must still
          // wait for its pods.
          const syncDeleted = { actionId: action.id, namespace: sync.namespace, name: sync.name, matchLabels };
          if (!dryRun) await ctx.memory.set(SWITCH_KEY, { ...current, syncDeleted } satisfies Switch);
          await kube(`delete ${what}`, () => cluster.deleteDeployment(sync.namespace, sync.name, dryRun));
          did = "deleted";
        } else if (dep.spec?.replicas === 0) {
          did = "already at 0 replicas";
        } else {
          await kube(`scale ${what} to 0`, () => cluster.scaleDeploymentToZero(sync.namespace, sync.name, dryRun));
          did = `scaled from ${dep.spec?.replicas ?? 1} to 0`;
        }
      }
      if (dryRun) {
        const would = did.startsWith("already") ? did : `would be ${did} (accepted with dryRun=All)`;
        return { detail: `dry run: ${what} ${would}` };
      }
      const timeoutSeconds = deps.stopSyncTimeoutSeconds ?? 120;
      const deadline = ctx.now() + timeoutSeconds * 1000;
      for (;;) {
        const pods = await kube(`list pods of ${what}`, () => cluster.listPods(sync.namespace, matchLabels));
        const gone =
          sync.action === "delete"
            ? !(await kube(`read ${what}`, () => cluster.readDeployment(sync.namespace, sync.name)))
            : true;
        if (pods.total === 0 && gone) {
          const record: SyncStopped = {
            actionId: action.id,
            to: action.to,
            at: new Date(ctx.now()).toISOString(),
          };
          const earlier = await ctx.memory.get<SyncStopped>(SYNC_STOPPED_KEY);
          if (!earlier || !did.startsWith("already")) await ctx.memory.set(SYNC_STOPPED_KEY, record);
          return { detail: `${what} ${did}; its pods are gone` };
        }
        const remain = `${pods.total} pod(s) (${pods.terminating} terminating)`;
        if (ctx.now() >= deadline) {
          throw new StepError(
            "sync-stop-timeout",
            `${what} ${did}, but after ${timeoutSeconds} s ${remain} remain${gone ? "" : " and the Deployment still exists"}`,
          );
        }
        ctx.progress(`${what} ${did}; waiting for ${remain} to go`);
        await ctx.sleep(pollMs);
      }
    },
  };

  const dns: Step<EtcdSyncTeardownTarget> = {
    name: "flip-dns",
    async run(ctx) {
      const name = ctx.target.dns;
      const dnsTarget = deps.agentConfig.targets[name];
      if (dnsTarget?.kind !== "dns-flip") {
        throw new StepError(
          "config",
          `dns names ${JSON.stringify(name)}, which is not a dns-flip target of this agent`,
        );
      }
      const result = await flipDns(dnsTarget satisfies DnsFlipTarget, ctx.action.from, ctx.action.to, {
        dryRun: ctx.action.dryRun,
        log: ctx.log.child({ dnsTarget: name }),
        sleep: (ms) => ctx.sleep(ms),
        now: () => ctx.now(),
        env: deps.env,
        fetch: deps.fetch,
        verifyIntervalMs: deps.verifyIntervalMs,
        progress: (d) => ctx.progress(`${name}: ${d}`),
        signal: ctx.signal,
      });
      return { detail: `${name} (${result.outcome}): ${result.detail}` };
    },
  };

  const restart: Step<EtcdSyncTeardownTarget> = {
    name: "restart",
    async run(ctx) {
      const { target, action } = ctx;
      if (target.restart.length === 0) return { status: "skipped", detail: "no workloads to restart" };
      const notes: string[] = [];
      const { actionIds } = await joinSwitch(ctx);
      for (const w of target.restart) {
        const obj = await kube(`read ${label(w)}`, () => cluster.read(w));
        if (!obj) throw new StepError("workload-not-found", `${label(w)} not found; nothing restarted after it`);
        const by = obj.spec?.template?.metadata?.annotations?.[RESTARTED_BY];
        if (by !== undefined && actionIds.includes(by)) {
          notes.push(`${label(w)} already restarted by ${by}`);
          continue;
        }
        const annotations = { [RESTARTED_AT]: new Date(ctx.now()).toISOString(), [RESTARTED_BY]: action.id };
        await kube(`restart ${label(w)}`, () => cluster.restart(w, annotations, action.dryRun));
        notes.push(`${label(w)} ${action.dryRun ? "restart accepted with dryRun=All" : "restarted"}`);
      }
      if (action.dryRun) return { detail: `dry run: ${notes.join("; ")}` };
      const deadline = ctx.now() + target.restartTimeoutSeconds * 1000;
      const pending = new Map(target.restart.map((w) => [label(w), w]));
      const last = new Map<string, string>();
      for (;;) {
        for (const [key, w] of pending) {
          const obj = await kube(`read ${label(w)}`, () => cluster.read(w));
          if (!obj) {
            last.set(key, "not found");
            continue;
          }
          const state = rolloutState(w.kind, obj);
          if (state.done) pending.delete(key);
          else last.set(key, state.detail);
        }
        if (pending.size === 0) {
          return { detail: `${notes.join("; ")}; ${target.restart.length}/${target.restart.length} rollouts complete` };
        }
        if (ctx.now() >= deadline) {
          const lagging = [...pending.keys()].map((k) => `${k}: ${last.get(k) ?? "unknown"}`).join("; ");
          throw new StepError(
            "restart-timeout",
            `after ${target.restartTimeoutSeconds} s, ${pending.size} rollout(s) incomplete: ${lagging}`,
          );
        }
        ctx.progress(`${target.restart.length - pending.size}/${target.restart.length} rollouts complete`);
        await ctx.sleep(pollMs);
      }
    },
  };

  const followUps: Step<EtcdSyncTeardownTarget> = {
    name: "follow-ups",
    async run(ctx) {
      // The switch is complete: a later action starts a new one (see Switch).
      const done = await joinSwitch(ctx);
      if (!ctx.action.dryRun && !done.finished) await ctx.memory.set(SWITCH_KEY, { ...done, finished: true });
      const items = ctx.target.followUps;
      if (items.length === 0) return { status: "skipped", detail: "no manual follow-ups configured" };
      return { detail: `manual follow-ups: ${items.map((t, i) => `[ ] ${i + 1}. ${t}`).join(" ")}` };
    },
  };

  return {
    kind: "etcd-sync-teardown",
    steps: () => [consistency, stopSync, dns, restart, followUps],
  };
}
