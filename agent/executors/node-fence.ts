/**
 * The `node-fence` executor (design §7, runbook D): when a node group (a datacenter) is lost,
 * fence its nodes with Kubernetes' non-graceful node shutdown taint so that stateful workloads move
 * in about a minute instead of never (StatefulSet pods whose volumes stay attached to an
 * unreachable node are not rescheduled at all; other pods wait for the 300 s `tolerationSeconds`
 * of `node.kubernetes.io/not-ready` / `unreachable`).
 *
 * Failover (away from a lost group): preflight → cordon → fence → wait-evicted → wait-workloads.
 * - preflight: every node of the outgoing group has had `Ready` False/Unknown for at least
 *   `notReadySeconds` by the condition's `lastTransitionTime` (the API's own view, not the
 *   alert's); the incoming group has a Ready, schedulable node; fencing keeps at most
 *   `maxFenceFraction` of the cluster's nodes tainted. Refusals: `node-ready` (never waived, not
 *   even by `force`), `no-destination`, `fence-fraction`, and `not-ready-too-recent` (the only one
 *   `force` waives). The nodes and pods it saw are remembered per action, so a resumed action acts
 *   on the same nodes.
 * - cordon: `spec.unschedulable: true`, annotated `turnout.dev/cordoned-by: <action>`.
 * - fence: the taint `node.kubernetes.io/out-of-service=nodeshutdown:NoExecute`
 *   (https://kubernetes.io/docs/concepts/cluster-administration/node-shutdown/#non-graceful-node-shutdown),
 *   annotated `turnout.dev/fenced-by: <action>`. Each node is read again right before its write,
 *   which carries that read's resourceVersion (409 on a concurrent change, then re-read): a node
 *   that turned Ready since preflight is never tainted.
 * - wait-evicted: until no pod but DaemonSet (and static) pods is bound to the fenced nodes and
 *   their VolumeAttachments are gone, bounded by `settleSeconds`.
 * - wait-workloads: until every configured workload has its replicas Ready on unfenced nodes.
 *
 * The way back (the returning group): preflight (wait until its nodes are Ready for
 * `notReadySeconds`; the Kubernetes documentation removes the taint only after the node is back)
 * → unfence → uncordon. Only what turnout did is undone: a taint or cordon without turnout's
 * annotation belongs to a person and is left alone (and named in the report).
 *
 * Every write reads first and is skipped when the node is already there, so a re-delivered or
 * resumed action converges without a second write. Dry run (drills): every node patch is sent with
 * `dryRun=All`, nothing is waited for, and the report says what would be fenced and which pods
 * would move; the checks that depend on the nodes' current health (`node-ready`,
 * `not-ready-too-recent`, healthy nodes being the normal state between incidents) are reported as
 * what a real failover would refuse now instead of failing the drill.
 */
import * as k8s from "@kubernetes/client-node";
import type { NodeFenceTarget } from "../../shared/config.ts";
import type { ActionRequest } from "../../shared/protocol.ts";
import type { Executor, Step, StepContext, StepOutcome } from "../executor.ts";
import { StepError } from "../executor.ts";
import { apiErrorText, dryRunOption, isApiStatus, labelSelector, unlessNotFound } from "../kube-api.ts";

/** Kubernetes' non-graceful node shutdown taint. */
export const OUT_OF_SERVICE_TAINT = {
  key: "node.kubernetes.io/out-of-service",
  value: "nodeshutdown",
  effect: "NoExecute",
} as const;
/** Node annotation naming the action that tainted it (only those taints are removed on the way back). */
export const FENCED_BY = "turnout.dev/fenced-by";
/** Node annotation naming the action that cordoned it (only those cordons are lifted on the way back). */
export const CORDONED_BY = "turnout.dev/cordoned-by";
/** Kubernetes' default `tolerationSeconds` for not-ready / unreachable: when eviction would start without the taint. */
export const DEFAULT_EVICTION_SECONDS = 300;

/** Step names, in order, for each direction. */
export const NODE_FENCE_STEPS = {
  fence: ["preflight", "cordon", "fence", "wait-evicted", "wait-workloads"],
  unfence: ["preflight", "unfence", "uncordon"],
} as const;

type Workload = NodeFenceTarget["workloads"][number];

/** What the failover remembers per action (durable memory; a dry run keeps it in the closure only). */
interface FencePlan {
  actionId: string;
  nodes: string[];
  /** Pods bound to each node at preflight that must go (not DaemonSet or static pods): `ns/name`. */
  pods: Record<string, string[]>;
  /** VolumeAttachment names per node at preflight. */
  volumes: Record<string, string[]>;
  decidedAt: number;
  /** When the fence step started writing (the decision the bench times from). */
  fencedAt?: number;
}

const planKey = (actionId: string) => `node-fence:plan:${actionId}`;

/** Whether a pod stays on a fenced node: DaemonSet pods (and static pods, owned by their Node). */
function staysOnNode(pod: k8s.V1Pod): boolean {
  return (pod.metadata?.ownerReferences ?? []).some(
    (r) => r.controller === true && (r.kind === "DaemonSet" || r.kind === "Node"),
  );
}

function podName(pod: k8s.V1Pod): string {
  return `${pod.metadata?.namespace ?? "?"}/${pod.metadata?.name ?? "?"}`;
}

function readyCondition(node: k8s.V1Node): k8s.V1NodeCondition | undefined {
  return (node.status?.conditions ?? []).find((c) => c.type === "Ready");
}

function isReady(node: k8s.V1Node): boolean {
  return readyCondition(node)?.status === "True";
}

function isFenced(node: k8s.V1Node): boolean {
  return (node.spec?.taints ?? []).some((t) => t.key === OUT_OF_SERVICE_TAINT.key);
}

/** Seconds the node's Ready condition has held its current status, or undefined when the API does not say. */
function secondsInState(node: k8s.V1Node, now: number): number | undefined {
  const t = readyCondition(node)?.lastTransitionTime;
  if (t === undefined) return undefined;
  const ms = new Date(t).getTime();
  return Number.isFinite(ms) ? Math.max(0, Math.floor((now - ms) / 1000)) : undefined;
}

function nodeName(node: k8s.V1Node): string {
  return node.metadata?.name ?? "?";
}

function readyText(node: k8s.V1Node, now: number): string {
  const c = readyCondition(node);
  const held = secondsInState(node, now);
  const status = c === undefined ? "no Ready condition" : `Ready=${c.status}`;
  return `${nodeName(node)} ${status}${held === undefined ? "" : ` for ${held} s`}`;
}

function list(names: string[]): string {
  return names.length ? names.join(", ") : "(none)";
}

const label = (w: Workload) => `${w.kind} ${w.namespace}/${w.name}`;

/** The reads and writes the executor makes (each one granted in agent/deploy/base/rbac-node-fence.yaml). */
class FenceCluster {
  private readonly core: k8s.CoreV1Api;
  private readonly apps: k8s.AppsV1Api;
  private readonly storage: k8s.StorageV1Api;

  constructor(kc: k8s.KubeConfig) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.apps = kc.makeApiClient(k8s.AppsV1Api);
    this.storage = kc.makeApiClient(k8s.StorageV1Api);
  }

  async nodes(selector?: string): Promise<k8s.V1Node[]> {
    const res = await this.core.listNode(selector ? { labelSelector: selector } : {});
    return res.items;
  }

  async node(name: string): Promise<k8s.V1Node | undefined> {
    return unlessNotFound(this.core.readNode({ name }));
  }

  /** Merge patch guarded by the resourceVersion the change was computed from (409 when it moved). */
  async patchNode(name: string, body: Record<string, unknown>, dryRun: boolean): Promise<void> {
    await this.core.patchNode(
      { name, body, ...dryRunOption(dryRun) },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
  }

  async podsOn(node: string): Promise<k8s.V1Pod[]> {
    const res = await this.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` });
    return res.items;
  }

  /** VolumeAttachments by node (the API offers no field selector for spec.nodeName). */
  async volumeAttachments(): Promise<k8s.V1VolumeAttachment[]> {
    return (await this.storage.listVolumeAttachment()).items;
  }

  async workload(w: Workload): Promise<k8s.V1Deployment | k8s.V1StatefulSet | undefined> {
    const ref = { namespace: w.namespace, name: w.name };
    return w.kind === "Deployment"
      ? unlessNotFound(this.apps.readNamespacedDeployment(ref))
      : unlessNotFound(this.apps.readNamespacedStatefulSet(ref));
  }

  async podsOf(namespace: string, matchLabels: Record<string, string>): Promise<k8s.V1Pod[]> {
    const selector = labelSelector(matchLabels);
    if (!selector) return [];
    return (await this.core.listNamespacedPod({ namespace, labelSelector: selector })).items;
  }
}

export interface NodeFenceOptions {
  /** The agent's Kubernetes credentials. */
  kubeConfig: k8s.KubeConfig;
  /** Interval between reads while waiting. @default 100 */
  pollMs?: number;
  /** Attempts at a node write that meets a concurrent change (409). @default 5 */
  conflictRetries?: number;
}

/** Creates the `node-fence` executor. */
export function createNodeFenceExecutor(options: NodeFenceOptions): Executor<NodeFenceTarget> {
  const cluster = new FenceCluster(options.kubeConfig);
  const pollMs = options.pollMs ?? 100;
  const conflictRetries = options.conflictRetries ?? 5;

  /** The pods that must leave `node` (not DaemonSet or static pods) and its VolumeAttachments, by name. */
  async function boundTo(
    node: string,
    attachments: k8s.V1VolumeAttachment[],
  ): Promise<{ pods: string[]; volumes: string[] }> {
    const pods = (await cluster.podsOn(node)).filter((pod) => !staysOnNode(pod)).map(podName);
    const volumes = attachments.filter((va) => va.spec.nodeName === node).map((va) => va.metadata?.name ?? "?");
    return { pods, volumes };
  }

  /**
   * Reads `name`, lets `change` decide the patch from what it read (undefined: nothing to do), and
   * sends it with that read's resourceVersion; on 409 reads again. Returns what `change` said.
   */
  async function writeNode(
    name: string,
    dryRun: boolean,
    change: (node: k8s.V1Node) => { patch?: Record<string, unknown>; note: string },
  ): Promise<{ wrote: boolean; note: string }> {
    for (let attempt = 1; ; attempt++) {
      const node = await cluster.node(name);
      if (!node) return { wrote: false, note: `${name}: node object gone; nothing to do` };
      const { patch, note } = change(node);
      if (!patch) return { wrote: false, note };
      const metadata = {
        ...(patch.metadata as Record<string, unknown> | undefined),
        resourceVersion: node.metadata?.resourceVersion,
      };
      try {
        await cluster.patchNode(name, { ...patch, metadata }, dryRun);
        return { wrote: true, note };
      } catch (err) {
        if (!isApiStatus(err, 409) || attempt >= conflictRetries) throw err;
      }
    }
  }

  return {
    kind: "node-fence",
    steps(action: ActionRequest, target: NodeFenceTarget): Step<NodeFenceTarget>[] {
      return action.kind === "failback" ? unfenceSteps(action, target) : fenceSteps(action, target);
    },
  };

  /** Wraps a step so that an API failure is a StepError naming the step and where a retry resumes. */
  function step(name: string, run: (ctx: StepContext<NodeFenceTarget>) => Promise<StepOutcome>): Step<NodeFenceTarget> {
    return {
      name,
      async run(ctx) {
        try {
          return await run(ctx);
        } catch (err) {
          if (ctx.signal.aborted || err instanceof StepError) throw err;
          throw new StepError("kube-api-error", `${name}: ${apiErrorText(err)}. A retry resumes at step ${name}.`);
        }
      },
    };
  }

  function fenceSteps(action: ActionRequest, target: NodeFenceTarget): Step<NodeFenceTarget>[] {
    const outgoing = target.nodes[action.from].selector;
    const incoming = target.nodes[action.to].selector;
    const dryRun = action.dryRun;
    let dryPlan: FencePlan | undefined;

    const loadPlan = async (ctx: StepContext<NodeFenceTarget>): Promise<FencePlan | undefined> =>
      dryRun ? dryPlan : ctx.memory.get<FencePlan>(planKey(action.id));
    const savePlan = async (ctx: StepContext<NodeFenceTarget>, plan: FencePlan): Promise<void> => {
      if (dryRun) dryPlan = plan;
      else await ctx.memory.set(planKey(action.id), plan);
    };
    const plan = async (ctx: StepContext<NodeFenceTarget>): Promise<FencePlan> => {
      const p = await loadPlan(ctx);
      if (!p) throw new StepError("no-plan", `no preflight record for ${action.id}; a retry must start at preflight`);
      return p;
    };

    /** Refuses to write to a node that shows Ready (except in a drill, which only notes it). */
    const refuseReady = (node: k8s.V1Node, ctx: StepContext<NodeFenceTarget>, done: string[]): void => {
      if (!isReady(node) || dryRun) return;
      throw new StepError(
        "node-ready",
        `${readyText(node, ctx.now())}: the API shows it Ready, so it is not fenced (a live node's volumes would be corrupted); done before it: ${list(done)}`,
      );
    };

    const preflight = step("preflight", async (ctx) => {
      const now = ctx.now();
      const [all, out, inc] = await Promise.all([cluster.nodes(), cluster.nodes(outgoing), cluster.nodes(incoming)]);
      if (out.length === 0) {
        throw new StepError("no-nodes", `the ${action.from} selector ${outgoing} matches no node; nothing to fence`);
      }
      const remembered = await loadPlan(ctx);
      const planned = remembered ? out.filter((n) => remembered.nodes.includes(nodeName(n))) : out;
      const names = planned.map(nodeName);
      const findings: string[] = [];

      const ready = planned.filter(isReady);
      if (ready.length > 0) {
        const msg = `${action.from} nodes the API shows Ready: ${ready.map((n) => readyText(n, now)).join(", ")}; a node that is Ready is never fenced, whatever the alerts say (force does not change this)`;
        if (!dryRun) throw new StepError("node-ready", msg);
        findings.push(`a real failover would refuse now (node-ready): ${msg}`);
      }

      const destinations = inc.filter((n) => isReady(n) && !n.spec?.unschedulable && !isFenced(n));
      if (destinations.length === 0) {
        throw new StepError(
          "no-destination",
          `no Ready, schedulable node in the ${action.to} group (${incoming}): ${inc.map((n) => readyText(n, now)).join(", ") || "no nodes match"}; fencing would leave the workloads nowhere to go`,
        );
      }

      const fencedAfter = new Set([...all.filter(isFenced).map(nodeName), ...names]);
      const fraction = fencedAfter.size / Math.max(1, all.length);
      if (fraction > target.maxFenceFraction) {
        throw new StepError(
          "fence-fraction",
          `fencing ${list(names)} would leave ${fencedAfter.size} of the cluster's ${all.length} nodes tainted out-of-service (${list([...fencedAfter].sort())}), more than maxFenceFraction=${target.maxFenceFraction}`,
        );
      }

      const young = planned.filter((n) => !isReady(n) && (secondsInState(n, now) ?? -1) < target.notReadySeconds);
      if (young.length > 0) {
        const msg = `${action.from} nodes not NotReady for notReadySeconds=${target.notReadySeconds} yet: ${young.map((n) => readyText(n, now)).join(", ")}`;
        if (action.force) findings.push(`FORCED past notReadySeconds: ${msg}`);
        else if (dryRun) findings.push(`a real failover would refuse now (not-ready-too-recent): ${msg}`);
        else
          throw new StepError(
            "not-ready-too-recent",
            `${msg}; a brief outage must not fence (force waives only this check)`,
          );
      }

      let p = remembered;
      if (!p) {
        const attachments = await cluster.volumeAttachments();
        const pods: Record<string, string[]> = {};
        const volumes: Record<string, string[]> = {};
        for (const name of names) {
          const bound = await boundTo(name, attachments);
          pods[name] = bound.pods;
          volumes[name] = bound.volumes;
        }
        p = { actionId: action.id, nodes: names, pods, volumes, decidedAt: now };
        await savePlan(ctx, p);
      }
      const podCount = Object.values(p.pods).flat();
      const volCount = Object.values(p.volumes).flat();
      const detail = [
        `${dryRun ? "would fence" : "fencing"} ${names.map((n) => readyText(planned.find((x) => nodeName(x) === n) ?? {}, now)).join(", ")}`,
        `${fencedAfter.size}/${all.length} cluster nodes out of service after this (max ${target.maxFenceFraction})`,
        `destination ${action.to}: ${destinations.length} Ready (${list(destinations.map(nodeName))})`,
        `pods to move: ${podCount.length ? podCount.join(", ") : "none"}`,
        `VolumeAttachments to detach: ${volCount.length ? volCount.join(", ") : "none"}`,
        ...findings,
      ];
      return { detail: detail.join("; ") };
    });

    /** Writes the planned nodes in turn (`change` as writeNode's; `done`: the nodes written before it). */
    const writeEach = async (
      ctx: StepContext<NodeFenceTarget>,
      p: FencePlan,
      change: (node: k8s.V1Node, name: string, done: string[]) => { patch?: Record<string, unknown>; note: string },
    ): Promise<StepOutcome> => {
      const notes: string[] = [];
      const done: string[] = [];
      for (const name of p.nodes) {
        ctx.signal.throwIfAborted();
        const r = await writeNode(name, dryRun, (node) => change(node, name, done));
        done.push(name);
        notes.push(r.note);
        ctx.progress(`${done.length}/${p.nodes.length} nodes: ${r.note}`);
      }
      return { detail: `${dryRun ? "dry run: " : ""}${notes.join("; ")}` };
    };

    const cordon = step("cordon", async (ctx) =>
      writeEach(ctx, await plan(ctx), (node, name, done) => {
        if (node.spec?.unschedulable) {
          const by = node.metadata?.annotations?.[CORDONED_BY];
          return {
            note: `${name} already cordoned${by ? ` by ${by}` : " (not by turnout; left as its owner set it)"}`,
          };
        }
        refuseReady(node, ctx, done);
        return {
          patch: { metadata: { annotations: { [CORDONED_BY]: action.id } }, spec: { unschedulable: true } },
          note: `${name} ${dryRun ? "cordon accepted with dryRun=All" : "cordoned"}`,
        };
      }),
    );

    const fence = step("fence", async (ctx) => {
      const p = await plan(ctx);
      if (p.fencedAt === undefined) {
        p.fencedAt = ctx.now();
        await savePlan(ctx, p);
      }
      return writeEach(ctx, p, (node, name, done) => {
        if (isFenced(node)) {
          const by = node.metadata?.annotations?.[FENCED_BY];
          return { note: `${name} already tainted out-of-service${by ? ` by ${by}` : " (not by turnout)"}` };
        }
        refuseReady(node, ctx, done);
        const taints = [...(node.spec?.taints ?? []), { ...OUT_OF_SERVICE_TAINT }];
        return {
          patch: { metadata: { annotations: { [FENCED_BY]: action.id } }, spec: { taints } },
          note: `${name} ${dryRun ? "taint accepted with dryRun=All" : "tainted"} ${OUT_OF_SERVICE_TAINT.key}=${OUT_OF_SERVICE_TAINT.value}:${OUT_OF_SERVICE_TAINT.effect}`,
        };
      });
    });

    const waitEvicted = step("wait-evicted", async (ctx) => {
      const p = await plan(ctx);
      const describe = (remaining: Map<string, { pods: string[]; volumes: string[] }>) =>
        p.nodes
          .map((n) => {
            const r = remaining.get(n) ?? { pods: [], volumes: [] };
            const pods0 = p.pods[n]?.length ?? 0;
            const vols0 = p.volumes[n]?.length ?? 0;
            const podsGone = Math.max(0, pods0 - r.pods.filter((x) => p.pods[n]?.includes(x)).length);
            const volsGone = Math.max(0, vols0 - r.volumes.filter((x) => p.volumes[n]?.includes(x)).length);
            return `${n}: pods ${podsGone}/${pods0} gone, volumes ${volsGone}/${vols0} detached`;
          })
          .join("; ");
      if (dryRun) {
        const pods = Object.values(p.pods).flat();
        const vols = Object.values(p.volumes).flat();
        return {
          status: "skipped",
          detail: `dry run: would wait up to ${target.settleSeconds} s for ${pods.length} pods (${list(pods)}) and ${vols.length} VolumeAttachments (${list(vols)}) to leave ${list(p.nodes)}`,
        };
      }
      const deadline = ctx.now() + target.settleSeconds * 1000;
      for (;;) {
        ctx.signal.throwIfAborted();
        const attachments = await cluster.volumeAttachments();
        const remaining = new Map<string, { pods: string[]; volumes: string[] }>();
        for (const n of p.nodes) {
          const bound = await boundTo(n, attachments);
          if (bound.pods.length || bound.volumes.length) remaining.set(n, bound);
        }
        if (remaining.size === 0) {
          const took =
            p.fencedAt === undefined ? "" : ` ${Math.round((ctx.now() - p.fencedAt) / 100) / 10} s after the fence`;
          return { detail: `${describe(remaining)}; only DaemonSet pods remain on the fenced nodes${took}` };
        }
        if (ctx.now() >= deadline) {
          const left = [...remaining]
            .map(([n, r]) => `${n}: pods ${list(r.pods)}, VolumeAttachments ${list(r.volumes)}`)
            .join("; ");
          throw new StepError(
            "eviction-timeout",
            `after settleSeconds=${target.settleSeconds}, still bound to fenced nodes: ${left} (is the out-of-service taint honoured, i.e. Kubernetes ≥ 1.28 or the NodeOutOfServiceVolumeDetach gate?)`,
          );
        }
        ctx.progress(describe(remaining));
        await ctx.sleep(pollMs);
      }
    });

    const waitWorkloads = step("wait-workloads", async (ctx) => {
      const p = await plan(ctx);
      if (target.workloads.length === 0) return { status: "skipped", detail: "no workloads configured" };
      const fenced = new Set(p.nodes);
      const state = async (w: Workload) => {
        const obj = await cluster.workload(w);
        if (!obj) throw new StepError("workload-not-found", `${label(w)} not found`);
        const want = obj.spec?.replicas ?? 1;
        const pods = await cluster.podsOf(w.namespace, obj.spec?.selector.matchLabels ?? {});
        const good = pods.filter(
          (pod) =>
            !pod.metadata?.deletionTimestamp &&
            pod.spec?.nodeName !== undefined &&
            !fenced.has(pod.spec.nodeName) &&
            (pod.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"),
        );
        const where = [...new Set(good.map((pod) => pod.spec?.nodeName ?? "?"))].sort();
        return {
          done: good.length >= want,
          text: `${label(w)} ${good.length}/${want} Ready${where.length ? ` on ${list(where)}` : ""}`,
        };
      };
      if (dryRun) {
        const now = await Promise.all(target.workloads.map(state));
        return {
          status: "skipped",
          detail: `dry run: would wait up to ${target.settleSeconds} s for ${now.map((s) => s.text).join("; ")} (now) off ${list(p.nodes)}`,
        };
      }
      const deadline = ctx.now() + target.settleSeconds * 1000;
      for (;;) {
        ctx.signal.throwIfAborted();
        const states = await Promise.all(target.workloads.map(state));
        const texts = states.map((s) => s.text).join("; ");
        if (states.every((s) => s.done)) {
          const moved = Object.values(p.pods).flat().length;
          // From the decision (preflight's verdict), so the cordon and the taint writes count too.
          const since = p.decidedAt;
          const took = Math.round((ctx.now() - since) / 100) / 10;
          return {
            detail: `${texts}; ${moved} pods moved off ${list(p.nodes)}; workloads Ready ${took} s after the fence decision (without the taint: eviction only after ${DEFAULT_EVICTION_SECONDS} s NotReady, and StatefulSet pods whose volumes are attached to a lost node are never rescheduled)`,
          };
        }
        if (ctx.now() >= deadline) {
          throw new StepError("workloads-not-ready", `after settleSeconds=${target.settleSeconds}: ${texts}`);
        }
        ctx.progress(texts);
        await ctx.sleep(pollMs);
      }
    });

    return [preflight, cordon, fence, waitEvicted, waitWorkloads];
  }

  function unfenceSteps(action: ActionRequest, target: NodeFenceTarget): Step<NodeFenceTarget>[] {
    const returning = target.nodes[action.to].selector;
    const dryRun = action.dryRun;
    const ours = (n: k8s.V1Node) =>
      n.metadata?.annotations?.[FENCED_BY] !== undefined || n.metadata?.annotations?.[CORDONED_BY] !== undefined;
    const backFor = (n: k8s.V1Node, now: number) =>
      isReady(n) && (action.force || (secondsInState(n, now) ?? -1) >= target.notReadySeconds);

    const preflight = step("preflight", async (ctx) => {
      const deadline = ctx.now() + target.settleSeconds * 1000;
      for (;;) {
        ctx.signal.throwIfAborted();
        const now = ctx.now();
        const nodes = await cluster.nodes(returning);
        if (nodes.length === 0)
          throw new StepError("no-nodes", `the ${action.to} selector ${returning} matches no node`);
        const touched = nodes.filter(ours);
        const others = nodes.filter((n) => !ours(n) && (isFenced(n) || n.spec?.unschedulable));
        const foreign = others.length
          ? `; tainted or cordoned without turnout's annotation, left alone: ${list(others.map(nodeName))}`
          : "";
        if (touched.length === 0) return { detail: `nothing turnout fenced or cordoned in ${returning}${foreign}` };
        const waiting = touched.filter((n) => !backFor(n, now));
        const state = touched.map((n) => readyText(n, now)).join(", ");
        if (waiting.length === 0) {
          return {
            detail: `${state}: back for notReadySeconds=${target.notReadySeconds}${action.force ? " (FORCED: Ready now is enough)" : ""}${foreign}`,
          };
        }
        if (dryRun) {
          return {
            detail: `dry run: a real failback would wait for ${list(waiting.map(nodeName))} to be Ready for notReadySeconds=${target.notReadySeconds} (now: ${state})${foreign}`,
          };
        }
        if (ctx.now() >= deadline) {
          throw new StepError(
            "node-not-ready",
            `after settleSeconds=${target.settleSeconds}, not Ready for notReadySeconds=${target.notReadySeconds}: ${waiting.map((n) => readyText(n, now)).join(", ")}; the taint stays until a node is back (Kubernetes' order)`,
          );
        }
        ctx.progress(
          `waiting for ${list(waiting.map(nodeName))} to be Ready for ${target.notReadySeconds} s: ${state}`,
        );
        await ctx.sleep(pollMs);
      }
    });

    const undo = (name: "unfence" | "uncordon") =>
      step(name, async (ctx) => {
        const nodes = (await cluster.nodes(returning)).filter(ours).map(nodeName);
        const notes: string[] = [];
        for (const n of nodes) {
          ctx.signal.throwIfAborted();
          const r = await writeNode(n, dryRun, (node) => {
            const annotations = node.metadata?.annotations ?? {};
            if (name === "unfence") {
              if (annotations[FENCED_BY] === undefined) {
                return {
                  note: isFenced(node) ? `${n} tainted, but not by turnout; left alone` : `${n} already untainted`,
                };
              }
              if (!isReady(node) && !dryRun) {
                throw new StepError("node-not-ready", `${readyText(node, ctx.now())}: down again, so its taint stays`);
              }
              const taints = (node.spec?.taints ?? []).filter((t) => t.key !== OUT_OF_SERVICE_TAINT.key);
              return {
                patch: {
                  metadata: { annotations: { [FENCED_BY]: null } },
                  spec: { taints: taints.length ? taints : null },
                },
                note: `${n} ${dryRun ? "taint removal accepted with dryRun=All" : "taint removed"}`,
              };
            }
            if (annotations[CORDONED_BY] === undefined) {
              return {
                note: node.spec?.unschedulable
                  ? `${n} cordoned, but not by turnout; left alone`
                  : `${n} already uncordoned`,
              };
            }
            return {
              patch: { metadata: { annotations: { [CORDONED_BY]: null } }, spec: { unschedulable: null } },
              note: `${n} ${dryRun ? "uncordon accepted with dryRun=All" : "uncordoned"}`,
            };
          });
          notes.push(r.note);
          ctx.progress(`${notes.length}/${nodes.length} nodes: ${r.note}`);
        }
        if (nodes.length === 0) return { status: "skipped", detail: `nothing to ${name} in ${returning}` };
        return { detail: `${dryRun ? "dry run: " : ""}${notes.join("; ")}` };
      });

    return [preflight, undo("unfence"), undo("uncordon")];
  }
}
