/**
 * The `route-swap` executor (design §7, runbook A): moves egress from one NAT gateway to the other
 * by swapping DigitalOcean k8s-staticroute-operator StaticRoutes, with a *verified* wait instead of
 * the runbook's fixed 30–60 s.
 *
 * Steps: preflight → record-outgoing → delete-outgoing → create-incoming → egress-check.
 * Every step reads the cluster first and writes only what is missing, so a re-delivered or resumed
 * action converges without a second write. Dry run sends each write with `dryRun=All` and never
 * waits for operator reports.
 *
 * Operator facts relied on (digitalocean/k8s-staticroute-operator, controller/static-route-handler.py
 * and constants.py): the update handler diffs only `destinations`, so `spec.gateway` is never patched
 * in place (a different gateway means delete + create); `0.0.0.0/0` and `0.0.0.0` are refused; each
 * handler run posts Events `RouteCreateSucceeded` / `RouteCreateFailed` / `RouteDeleteSucceeded` /
 * `RouteDeleteFailed`. kopf posts Events for cluster-scoped objects in the `default` namespace
 * (kopf `_core/engines/posting.py`: `namespace = ref.get('namespace') or 'default'`).
 *
 * Per-node result shape read here (written by each operator pod, see
 * agent/sandbox/static-route-operator.ts): `status.create_fn.<node> = "Ready" | "NotReady"` and
 * `status.delete.<node> = "Ready" | "NotReady"`, keyed by kopf handler id then node name. Deletion
 * reports are Events with `involvedObject.uid` = the deleted object's uid and `source.host` /
 * `reportingInstance` = the node.
 */
import { isIP } from "node:net";
import * as k8s from "@kubernetes/client-node";
import { z } from "zod";
import type { RouteSwapTarget, Side } from "../../shared/config.ts";
import type { ActionRequest } from "../../shared/protocol.ts";
import type { Executor, Step, StepContext, StepOutcome } from "../executor.ts";
import { StepError } from "../executor.ts";
import { describeFetchError } from "../fetch-error.ts";
import { dryRunOption, isApiStatus, labelSelector, unlessNotFound } from "../kube-api.ts";

/** The StaticRoute custom resource (cluster-scoped). */
export const STATIC_ROUTE = { group: "networking.digitalocean.com", version: "v1", plural: "staticroutes" } as const;
export const STATIC_ROUTE_API_VERSION = `${STATIC_ROUTE.group}/${STATIC_ROUTE.version}`;
/** The finalizer kopf puts on objects it handles deletion for. */
export const KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker";
/** Field manager of the agent's server-side apply. */
export const FIELD_MANAGER = "turnout-agent";
/** Event reasons posted by the operator (constants.py ROUTE_EVT_MSG). */
export const ROUTE_EVENT_REASONS = {
  createSucceeded: "RouteCreateSucceeded",
  createFailed: "RouteCreateFailed",
  deleteSucceeded: "RouteDeleteSucceeded",
  deleteFailed: "RouteDeleteFailed",
} as const;
/** kopf handler ids under which per-node results land in `status` (create_fn and delete in the operator). */
export const STATUS_KEYS = { create: "create_fn", delete: "delete" } as const;

/** Step names, in order. */
export const ROUTE_SWAP_STEPS = [
  "preflight",
  "record-outgoing",
  "delete-outgoing",
  "create-incoming",
  "egress-check",
] as const;
export type RouteSwapStepName = (typeof ROUTE_SWAP_STEPS)[number];

// --------------------------------------------------------------------------------------------
// Objects read from the API, validated at the boundary.

const NodeResults = z.record(z.string(), z.string());

export const StaticRouteObjectSchema = z.object({
  metadata: z
    .object({
      name: z.string(),
      uid: z.string().optional(),
      resourceVersion: z.string().optional(),
      deletionTimestamp: z.unknown().optional(),
      finalizers: z.array(z.string()).optional(),
    })
    .loose(),
  spec: z.object({ destinations: z.array(z.string()).default([]), gateway: z.string().default("") }).loose(),
  status: z
    // `.catch`: the real operator stores a list here; read it as "no per-node results" instead of failing.
    .object({
      [STATUS_KEYS.create]: NodeResults.optional().catch(undefined),
      [STATUS_KEYS.delete]: NodeResults.optional().catch(undefined),
    })
    .loose()
    .optional(),
});
export type StaticRouteObject = z.infer<typeof StaticRouteObjectSchema>;

/** The full spec of a route as saved in durable memory for failback. */
export const SavedRouteSchema = z.object({
  name: z.string(),
  spec: z.record(z.string(), z.unknown()),
  uid: z.string().optional(),
  actionId: z.string(),
  savedAt: z.string(),
});
export type SavedRoute = z.infer<typeof SavedRouteSchema>;

/** Durable-memory key of the spec saved when `side`'s route was removed. */
export function savedRouteKey(side: Side): string {
  return `route-swap:saved:${side}`;
}
const convergedKey = (actionId: string) => `route-swap:converged:${actionId}`;

const EventSchema = z.object({
  reason: z.string().optional(),
  message: z.string().optional(),
  involvedObject: z.object({ uid: z.string().optional(), name: z.string().optional() }).loose(),
  source: z.object({ host: z.string().optional() }).loose().optional(),
  reportingInstance: z.string().optional(),
});

// --------------------------------------------------------------------------------------------
// Validation of specs (the operator's own rules plus ours).

/** Why `dest` is not an acceptable destination, or undefined when it is. */
export function destinationProblem(dest: string): string | undefined {
  const parts = dest.split("/");
  if (parts.length > 2) return `${JSON.stringify(dest)} is not an IP address or CIDR`;
  const [ip = "", prefix] = parts;
  const family = isIP(ip);
  if (family === 0) return `${JSON.stringify(dest)} is not an IP address or CIDR`;
  if (prefix !== undefined) {
    if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > (family === 4 ? 32 : 128)) {
      return `${JSON.stringify(dest)} has an invalid prefix length`;
    }
    if (Number(prefix) === 0) return `${JSON.stringify(dest)} is a default route; the operator refuses it`;
  }
  if (ip === "0.0.0.0" || ip === "::") return `${JSON.stringify(dest)} is the unspecified address; refused`;
  return undefined;
}

/** Problems with a StaticRoute spec (destinations IPs/CIDRs, gateway an IPv4 address, never 0.0.0.0). */
export function specProblems(label: string, spec: { destinations?: unknown; gateway?: unknown }): string[] {
  const problems: string[] = [];
  const dests = spec.destinations;
  if (!Array.isArray(dests) || dests.length === 0) problems.push(`${label}.destinations: needs at least one entry`);
  else {
    dests.forEach((d, i) => {
      const p = typeof d === "string" ? destinationProblem(d) : "not a string";
      if (p) problems.push(`${label}.destinations[${i}]: ${p}`);
    });
  }
  const gw = spec.gateway;
  if (typeof gw !== "string" || isIP(gw) !== 4)
    problems.push(`${label}.gateway: ${JSON.stringify(gw)} is not an IPv4 address`);
  else if (gw === "0.0.0.0") problems.push(`${label}.gateway: 0.0.0.0 is refused`);
  return problems;
}

// --------------------------------------------------------------------------------------------
// Cluster access.

function apiErrorText(err: unknown): string {
  if (err instanceof k8s.ApiException) {
    const body: unknown = err.body;
    let msg = typeof body === "string" ? body : "";
    try {
      const parsed = z.object({ message: z.string() }).safeParse(JSON.parse(msg));
      if (parsed.success) msg = parsed.data.message;
    } catch {
      // not JSON: keep the raw text
    }
    return `Kubernetes API ${err.code}: ${msg.slice(0, 300)}`;
  }
  return err instanceof Error ? err.message : String(err);
}

interface RouteEvent {
  node: string | undefined;
  reason: string;
  message: string;
}

/**
 * Who reported what, from the Events of one object. Node-attributed Events (`source.host` /
 * `reportingInstance` = a node) are counted per node. The real kopf-based operator posts one Event
 * per destination with `reportingInstance: "dev"` and no host (kopf `posting.py`), so when no Event
 * names an operator node the reports can only be counted: nodes × destinations successes needed.
 */
export function tallyReports(
  events: RouteEvent[],
  nodes: string[],
  okReason: string,
  failReason: string,
  destinations: number,
): {
  attributed: boolean;
  reported: string[];
  missing: string[];
  ok: number;
  needed: number;
  failures: RouteEvent[];
  done: boolean;
} {
  const attributedEvents = events.filter((e) => e.node !== undefined && nodes.includes(e.node));
  const failures = events.filter((e) => e.reason === failReason);
  if (attributedEvents.length > 0 || events.length === 0) {
    const reportedSet = new Set(attributedEvents.filter((e) => e.reason === okReason).map((e) => e.node));
    const reported = nodes.filter((n) => reportedSet.has(n));
    const missing = nodes.filter((n) => !reportedSet.has(n));
    return {
      attributed: true,
      reported,
      missing,
      ok: reported.length,
      needed: nodes.length,
      failures,
      done: missing.length === 0,
    };
  }
  const ok = events.filter((e) => e.reason === okReason).length;
  const needed = nodes.length * Math.max(1, destinations);
  return { attributed: false, reported: [], missing: nodes, ok, needed, failures, done: ok >= needed };
}

interface OperatorPod {
  pod: string;
  node: string;
  ready: boolean;
}

/** The reads and writes the executor makes, in one place (each one named in agent/deploy/base/rbac.yaml). */
class RouteCluster {
  private readonly custom: k8s.CustomObjectsApi;
  private readonly core: k8s.CoreV1Api;
  private readonly apps: k8s.AppsV1Api;
  readonly eventsNamespace: string;

  constructor(kc: k8s.KubeConfig, eventsNamespace: string) {
    this.custom = kc.makeApiClient(k8s.CustomObjectsApi);
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.apps = kc.makeApiClient(k8s.AppsV1Api);
    this.eventsNamespace = eventsNamespace;
  }

  async getRoute(name: string): Promise<StaticRouteObject | undefined> {
    const raw: unknown = await unlessNotFound(this.custom.getClusterCustomObject({ ...STATIC_ROUTE, name }));
    return raw === undefined ? undefined : StaticRouteObjectSchema.parse(raw);
  }

  /** DELETE; a 404 (already gone) is success. */
  async deleteRoute(name: string, dryRun: boolean): Promise<void> {
    try {
      await this.custom.deleteClusterCustomObject({ ...STATIC_ROUTE, name, ...dryRunOption(dryRun) });
    } catch (err) {
      if (!isApiStatus(err, 404)) throw err;
    }
  }

  /** Server-side apply of the whole object (field manager turnout-agent, force). */
  async applyRoute(name: string, spec: Record<string, unknown>, dryRun: boolean): Promise<void> {
    const body = { apiVersion: STATIC_ROUTE_API_VERSION, kind: "StaticRoute", metadata: { name }, spec };
    await this.custom.patchClusterCustomObject(
      { ...STATIC_ROUTE, name, body, fieldManager: FIELD_MANAGER, force: true, ...dryRunOption(dryRun) },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.ServerSideApply),
    );
  }

  async daemonSet(namespace: string, name: string): Promise<k8s.V1DaemonSet | undefined> {
    return unlessNotFound(this.apps.readNamespacedDaemonSet({ namespace, name }));
  }

  /** The operator's pods (by the DaemonSet's selector) and the node each runs on. */
  async operatorPods(namespace: string, ds: k8s.V1DaemonSet): Promise<OperatorPod[]> {
    const selector = labelSelector(ds.spec?.selector.matchLabels ?? {});
    const list = await this.core.listNamespacedPod({ namespace, ...(selector ? { labelSelector: selector } : {}) });
    return list.items
      .filter((p) => !p.metadata?.deletionTimestamp)
      .map((p) => ({
        pod: p.metadata?.name ?? "?",
        node: p.spec?.nodeName ?? "(unscheduled)",
        ready: (p.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"),
      }));
  }

  /** Operator Events about the object with this uid, as (node when the Event names one, reason, message). */
  async routeEvents(name: string, uid: string): Promise<RouteEvent[]> {
    const list = await this.core.listNamespacedEvent({
      namespace: this.eventsNamespace,
      fieldSelector: `involvedObject.name=${name}`,
    });
    const out: RouteEvent[] = [];
    for (const item of list.items) {
      const ev = EventSchema.safeParse(item);
      if (!ev.success || ev.data.involvedObject.uid !== uid) continue;
      const node = ev.data.source?.host ?? ev.data.reportingInstance;
      out.push({ node, reason: ev.data.reason ?? "", message: ev.data.message ?? "" });
    }
    return out;
  }
}

// --------------------------------------------------------------------------------------------
// Descriptions for reports and failures.

function sameSpec(obj: StaticRouteObject, desired: Record<string, unknown>): boolean {
  const want = z
    .object({ destinations: z.array(z.string()), gateway: z.string() })
    .loose()
    .safeParse(desired);
  if (!want.success) return false;
  const a = new Set(obj.spec.destinations);
  const b = new Set(want.data.destinations);
  return obj.spec.gateway === want.data.gateway && a.size === b.size && [...a].every((d) => b.has(d));
}

function nodeResults(obj: StaticRouteObject | undefined, key: string): Record<string, string> {
  const raw = obj?.status?.[key];
  const parsed = NodeResults.safeParse(raw);
  return parsed.success ? parsed.data : {};
}

function readyOn(obj: StaticRouteObject, nodes: string[]): { ready: string[]; missing: string[] } {
  const results = nodeResults(obj, STATUS_KEYS.create);
  const ready = nodes.filter((n) => results[n] === "Ready");
  return { ready, missing: nodes.filter((n) => results[n] !== "Ready") };
}

function describeRoute(name: string, obj: StaticRouteObject | undefined, nodes: string[]): string {
  if (!obj) return `StaticRoute ${name}: absent`;
  const base = `StaticRoute ${name}: present (uid ${obj.metadata.uid ?? "?"}, ${obj.spec.destinations.length} destinations via ${obj.spec.gateway}`;
  if (obj.metadata.deletionTimestamp != null) {
    const del = nodeResults(obj, STATUS_KEYS.delete);
    const per = nodes.map(
      (n) => `${n} ${del[n] === "Ready" ? "removed" : del[n] === "NotReady" ? "delete failed" : "not reported"}`,
    );
    return `${base}; being deleted, held by finalizer; ${per.join(", ") || "no operator nodes"})`;
  }
  const res = nodeResults(obj, STATUS_KEYS.create);
  const per = nodes.map((n) => `${n} ${res[n] ?? "no report"}`);
  return `${base}; ${per.join(", ") || "no operator nodes"})`;
}

function arrayLength(value: unknown): number {
  return Array.isArray(value) ? value.length : 0;
}

function listNodes(nodes: string[]): string {
  return nodes.length ? nodes.join(", ") : "(none)";
}

// --------------------------------------------------------------------------------------------
// The executor.

export interface RouteSwapOptions {
  /** The agent's Kubernetes credentials. */
  kubeConfig: k8s.KubeConfig;
  /** Namespace where the operator posts Events for cluster-scoped StaticRoutes (kopf: "default"). */
  eventsNamespace?: string;
  /** Interval between reads while waiting for the operator; default 50 ms. */
  pollMs?: number;
  /** HTTP client for the egress check (tests inject one); default global fetch. */
  fetch?: typeof fetch;
}

/** Per-action state shared by the steps of one `steps()` call. */
interface ActionState {
  converged: boolean;
}

/** Creates the `route-swap` executor. */
export function createRouteSwapExecutor(options: RouteSwapOptions): Executor<RouteSwapTarget> {
  const cluster = new RouteCluster(options.kubeConfig, options.eventsNamespace ?? "default");
  const pollMs = options.pollMs ?? 50;
  const doFetch = options.fetch ?? globalThis.fetch;

  return {
    kind: "route-swap",
    steps(action: ActionRequest, target: RouteSwapTarget): Step<RouteSwapTarget>[] {
      const state: ActionState = { converged: false };
      const outgoing = target.routes[action.from];
      const incoming = target.routes[action.to];
      const ns = target.operator.namespace;

      /**
       * The spec to create for the incoming side: the one saved when it was removed, else config.
       * A saved spec is used only when its name and gateway equal the config's for that side
       * (design §7): anyone who could write the agent's memory must not be able to route traffic
       * through a gateway the config never named, and a config changed since the save must not be
       * silently overridden. A mismatch fails the step; the operator decides.
       */
      const desiredIncoming = async (
        ctx: StepContext<RouteSwapTarget>,
      ): Promise<{ name: string; spec: Record<string, unknown>; source: string }> => {
        const saved = SavedRouteSchema.safeParse(await ctx.memory.get(savedRouteKey(action.to)));
        if (saved.success) {
          const gateway = saved.data.spec.gateway;
          if (saved.data.name !== incoming.name || gateway !== incoming.gateway) {
            throw new StepError(
              "saved-spec-mismatch",
              `the ${action.to} spec saved by ${saved.data.actionId} (StaticRoute ${JSON.stringify(saved.data.name)}, gateway ${JSON.stringify(gateway)}) does not match the config's routes.${action.to} (StaticRoute ${JSON.stringify(incoming.name)}, gateway ${JSON.stringify(incoming.gateway)}); fix the config, or remove the key ${savedRouteKey(action.to)} from memory.json in the agent's ConfigMap turnout-${ctx.targetName} to create the route from the config`,
            );
          }
          return { name: saved.data.name, spec: saved.data.spec, source: `spec saved by ${saved.data.actionId}` };
        }
        return {
          name: incoming.name,
          spec: { destinations: incoming.destinations, gateway: incoming.gateway },
          source: "config",
        };
      };

      const savedForThisAction = async (ctx: StepContext<RouteSwapTarget>): Promise<SavedRoute | undefined> => {
        const saved = SavedRouteSchema.safeParse(await ctx.memory.get(savedRouteKey(action.from)));
        return saved.success && saved.data.actionId === action.id ? saved.data : undefined;
      };

      const isConverged = async (ctx: StepContext<RouteSwapTarget>): Promise<boolean> =>
        state.converged || (await ctx.memory.get(convergedKey(action.id))) === true;

      /** Nodes that run an operator pod (the ones that must report). */
      const operatorNodes = async (): Promise<{ pods: OperatorPod[]; nodes: string[] }> => {
        const ds = await cluster.daemonSet(ns, target.operator.daemonSet);
        if (!ds) throw new StepError("operator-missing", `DaemonSet ${ns}/${target.operator.daemonSet} not found`);
        const pods = await cluster.operatorPods(ns, ds);
        return { pods, nodes: [...new Set(pods.map((p) => p.node))].sort() };
      };

      const describeCluster = async (): Promise<string> => {
        try {
          const { nodes } = await operatorNodes();
          const [o, i] = await Promise.all([cluster.getRoute(outgoing.name), cluster.getRoute(incoming.name)]);
          return `${describeRoute(outgoing.name, o, nodes)}; ${describeRoute(incoming.name, i, nodes)}`;
        } catch (err) {
          return `cluster state unknown (${apiErrorText(err)})`;
        }
      };

      /** Wraps a step so that any failure says what is in the cluster and where a retry resumes. */
      const step = (
        name: RouteSwapStepName,
        run: (ctx: StepContext<RouteSwapTarget>) => Promise<StepOutcome>,
      ): Step<RouteSwapTarget> => ({
        name,
        async run(ctx) {
          try {
            return await run(ctx);
          } catch (err) {
            if (ctx.signal.aborted) throw err;
            const code = err instanceof StepError ? err.code : "kube-api-error";
            const what = err instanceof StepError ? err.message : apiErrorText(err);
            const now = await describeCluster();
            throw new StepError(code, `${name}: ${what}. In the cluster now: ${now}. A retry resumes at step ${name}.`);
          }
        },
      });

      /** Waits until `name` (uid) is gone and every node posted RouteDeleteSucceeded for it. */
      const waitDeleted = async (
        ctx: StepContext<RouteSwapTarget>,
        name: string,
        uid: string | undefined,
        nodes: string[],
        destinationCount: number,
      ): Promise<string> => {
        const deadline = ctx.now() + target.settleSeconds * 1000;
        const started = ctx.now();
        for (;;) {
          ctx.signal.throwIfAborted();
          const obj = await cluster.getRoute(name);
          const gone = !obj || (uid !== undefined && obj.metadata.uid !== uid);
          const events = uid ? await cluster.routeEvents(name, uid) : [];
          const t = tallyReports(
            events,
            nodes,
            ROUTE_EVENT_REASONS.deleteSucceeded,
            ROUTE_EVENT_REASONS.deleteFailed,
            destinationCount,
          );
          const counted = t.attributed
            ? `${t.ok}/${t.needed} operator nodes`
            : `${t.ok}/${t.needed} (nodes × destinations) unattributed Events`;
          // Without a uid (object gone before we ever saw it) there is nothing to correlate: gone is enough.
          if (gone && (t.done || uid === undefined)) {
            return `StaticRoute ${name} deleted; ${counted} reported ${ROUTE_EVENT_REASONS.deleteSucceeded} in ${ctx.now() - started} ms`;
          }
          if (ctx.now() >= deadline) {
            const failed = t.failures.filter((e) => e.node === undefined || t.missing.includes(e.node)).slice(0, 5);
            const failedText = failed.length
              ? `; ${failed.map((e) => `${e.node ?? "(unnamed)"} reported ${e.reason}: ${e.message}`).join("; ")}`
              : "";
            const who = t.attributed
              ? `operator nodes that did not report ${ROUTE_EVENT_REASONS.deleteSucceeded}: ${listNodes(t.missing)}`
              : `the operator's Events name no node; ${counted} reported ${ROUTE_EVENT_REASONS.deleteSucceeded}, so some of ${listNodes(nodes)} did not`;
            throw new StepError(
              "delete-not-reported",
              `StaticRoute ${name} ${gone ? "is gone" : "still exists"} after settleSeconds=${target.settleSeconds}; ${who}${failedText}`,
            );
          }
          ctx.progress(
            `waiting for deletion of ${name}: ${counted} reported; object ${gone ? "gone" : "still present"}`,
          );
          await ctx.sleep(pollMs);
        }
      };

      /** Waits until every node reports `name` Ready in status.create_fn. */
      const waitReady = async (ctx: StepContext<RouteSwapTarget>, name: string, nodes: string[]): Promise<string> => {
        const deadline = ctx.now() + target.settleSeconds * 1000;
        const started = ctx.now();
        for (;;) {
          ctx.signal.throwIfAborted();
          const obj = await cluster.getRoute(name);
          if (!obj || obj.metadata.deletionTimestamp != null) {
            throw new StepError(
              "incoming-vanished",
              `StaticRoute ${name} disappeared while waiting for it to become Ready`,
            );
          }
          const r = await readiness(obj, nodes);
          if (r.ready)
            return `StaticRoute ${name} (${obj.spec.destinations.length} destinations via ${obj.spec.gateway}) ${r.detail} in ${ctx.now() - started} ms`;
          const { ready, missing } = readyOn(obj, nodes);
          if (ctx.now() >= deadline) {
            const results = nodeResults(obj, STATUS_KEYS.create);
            const notReady = missing.filter((n) => results[n] === "NotReady");
            const silent = missing.filter((n) => results[n] === undefined);
            const events = obj.metadata.uid ? await cluster.routeEvents(name, obj.metadata.uid) : [];
            const failures = events
              .filter((e) => e.reason === ROUTE_EVENT_REASONS.createFailed)
              .slice(0, 5)
              .map((e) => `${e.node ?? "(unnamed)"}: ${e.message}`);
            throw new StepError(
              "create-not-ready",
              `StaticRoute ${name} not Ready on every operator node after settleSeconds=${target.settleSeconds}; NotReady: ${listNodes(notReady)}; never reported: ${listNodes(silent)}${failures.length ? `; ${ROUTE_EVENT_REASONS.createFailed}: ${failures.join("; ")}` : ""}`,
            );
          }
          ctx.progress(`waiting for ${name} to be Ready: ${ready.length}/${nodes.length} nodes`);
          await ctx.sleep(pollMs);
        }
      };

      /**
       * Ready on every node: per-node status, or, when the operator keeps no per-node status (the
       * real one stores a single list, last writer wins), nodes × destinations unattributed
       * RouteCreateSucceeded Events and no failure.
       */
      const readiness = async (
        obj: StaticRouteObject,
        nodes: string[],
      ): Promise<{ ready: boolean; detail: string }> => {
        const { ready, missing } = readyOn(obj, nodes);
        if (missing.length === 0) return { ready: true, detail: `Ready on ${ready.length}/${nodes.length} nodes` };
        if (ready.length > 0 || !obj.metadata.uid) return { ready: false, detail: "" };
        const t = tallyReports(
          await cluster.routeEvents(obj.metadata.name, obj.metadata.uid),
          nodes,
          ROUTE_EVENT_REASONS.createSucceeded,
          ROUTE_EVENT_REASONS.createFailed,
          obj.spec.destinations.length,
        );
        const ok = !t.attributed && t.done && t.failures.length === 0;
        return {
          ready: ok,
          detail: ok
            ? `${t.ok}/${t.needed} (nodes × destinations) unattributed ${ROUTE_EVENT_REASONS.createSucceeded} Events`
            : "",
        };
      };

      const skippedConverged: StepOutcome = { status: "skipped", detail: "already converged" };

      return [
        step("preflight", async (ctx) => {
          const ds = await cluster.daemonSet(ns, target.operator.daemonSet);
          if (!ds) {
            throw new StepError("operator-missing", `operator DaemonSet ${ns}/${target.operator.daemonSet} not found`);
          }
          const desired = ds.status?.desiredNumberScheduled ?? 0;
          const readyCount = ds.status?.numberReady ?? 0;
          const pods = await cluster.operatorPods(ns, ds);
          const notReady = pods.filter((p) => !p.ready);
          if (desired === 0 || readyCount !== desired || notReady.length > 0) {
            const names = notReady.map((p) => `${p.pod} on ${p.node}`).join(", ");
            throw new StepError(
              "operator-not-ready",
              `operator DaemonSet ${ns}/${target.operator.daemonSet} is not fully ready (${readyCount}/${desired} ready)${names ? `; NotReady pods: ${names}` : ""}; every operator pod must be up or its node keeps stale routes`,
            );
          }
          const nodes = [...new Set(pods.map((p) => p.node))].sort();

          const want = await desiredIncoming(ctx);
          const problems = [
            ...specProblems(`routes.${action.from}`, outgoing),
            ...specProblems(`routes.${action.to}`, incoming),
            ...(want.source === "config" ? [] : specProblems(`saved ${action.to} spec`, want.spec)),
          ];
          if (problems.length) throw new StepError("invalid-spec", problems.join("; "));
          if (outgoing.name === incoming.name) {
            throw new StepError("invalid-spec", `both sides use the StaticRoute name ${outgoing.name}`);
          }

          const [out, inc] = await Promise.all([cluster.getRoute(outgoing.name), cluster.getRoute(incoming.name)]);
          const summary = `operator ${readyCount}/${desired} ready on ${listNodes(nodes)}; ${describeRoute(outgoing.name, out, nodes)}; ${describeRoute(incoming.name, inc, nodes)}`;
          if (out) return { detail: summary };

          const ours = await savedForThisAction(ctx);
          const incReady =
            inc !== undefined &&
            inc.metadata.deletionTimestamp == null &&
            sameSpec(inc, want.spec) &&
            (await readiness(inc, nodes)).ready;
          if (ours) return { detail: `resuming ${action.id}: ${summary}` };
          if (incReady) {
            state.converged = true;
            if (!action.dryRun) await ctx.memory.set(convergedKey(action.id), true);
            return { detail: `already converged: ${summary}` };
          }
          if (action.force) return { detail: `forced despite unexpected state: ${summary}` };
          throw new StepError(
            "unexpected-state",
            `outgoing StaticRoute ${outgoing.name} is absent and incoming ${incoming.name} is not Ready on every node; refusing to guess (force to converge anyway)`,
          );
        }),

        step("record-outgoing", async (ctx) => {
          if (await isConverged(ctx)) return skippedConverged;
          const out = await cluster.getRoute(outgoing.name);
          const prior = SavedRouteSchema.safeParse(await ctx.memory.get(savedRouteKey(action.from)));
          if (!out) {
            if (prior.success && prior.data.actionId === action.id) return { detail: "outgoing spec already saved" };
            return { status: "skipped", detail: `StaticRoute ${outgoing.name} absent; nothing to save` };
          }
          const record: SavedRoute = {
            name: out.metadata.name,
            spec: { ...out.spec },
            uid: out.metadata.uid,
            actionId: action.id,
            savedAt: new Date(ctx.now()).toISOString(),
          };
          const label = `${out.spec.destinations.length} destinations via ${out.spec.gateway}`;
          if (prior.success && prior.data.actionId === action.id && prior.data.uid === record.uid) {
            return { detail: `spec of ${outgoing.name} already saved (${label})` };
          }
          if (action.dryRun) return { detail: `dry run: would save the spec of ${outgoing.name} (${label})` };
          await ctx.memory.set(savedRouteKey(action.from), record);
          return { detail: `saved the spec of ${outgoing.name} (${label}) for failback` };
        }),

        step("delete-outgoing", async (ctx) => {
          if (await isConverged(ctx)) return skippedConverged;
          const out = await cluster.getRoute(outgoing.name);
          if (action.dryRun) {
            if (!out || out.metadata.deletionTimestamp != null) {
              return { detail: `dry run: StaticRoute ${outgoing.name} already ${out ? "being deleted" : "absent"}` };
            }
            await cluster.deleteRoute(outgoing.name, true);
            return { detail: `dry run: DELETE StaticRoute ${outgoing.name} accepted with dryRun=All` };
          }
          const { nodes } = await operatorNodes();
          const saved = await savedForThisAction(ctx);
          const uid = out?.metadata.uid ?? saved?.uid;
          if (out && out.metadata.deletionTimestamp == null) {
            await cluster.deleteRoute(outgoing.name, false);
          }
          const count = out?.spec.destinations.length ?? arrayLength(saved?.spec.destinations);
          return { detail: await waitDeleted(ctx, outgoing.name, uid, nodes, count) };
        }),

        step("create-incoming", async (ctx) => {
          if (await isConverged(ctx)) return skippedConverged;
          const want = await desiredIncoming(ctx);
          let inc = await cluster.getRoute(want.name);
          const label = `${String((want.spec.destinations as unknown[] | undefined)?.length ?? 0)} destinations via ${String(want.spec.gateway)} (${want.source})`;
          if (action.dryRun) {
            if (inc && inc.metadata.deletionTimestamp == null && sameSpec(inc, want.spec)) {
              return { detail: `dry run: StaticRoute ${want.name} already present with the wanted spec` };
            }
            await cluster.applyRoute(want.name, want.spec, true);
            return { detail: `dry run: apply of StaticRoute ${want.name} (${label}) accepted with dryRun=All` };
          }
          const { nodes } = await operatorNodes();
          // A present route with another spec is replaced, never edited: the operator ignores a changed
          // gateway (issue #23), and delete + create gives fresh per-node results to wait on. So is one
          // a node reported NotReady (e.g. created while the outgoing route still held its
          // destinations: `ip route add` fails with "File exists", and kopf does not retry it).
          const failedOn = inc ? Object.values(nodeResults(inc, STATUS_KEYS.create)).includes("NotReady") : false;
          if (inc && (inc.metadata.deletionTimestamp != null || !sameSpec(inc, want.spec) || failedOn)) {
            if (inc.metadata.deletionTimestamp == null) await cluster.deleteRoute(want.name, false);
            await waitDeleted(ctx, want.name, inc.metadata.uid, nodes, inc.spec.destinations.length);
            inc = undefined;
          }
          const applied = !inc;
          if (!inc) await cluster.applyRoute(want.name, want.spec, false);
          const ready = await waitReady(ctx, want.name, nodes);
          return { detail: `${applied ? "applied" : "found"} ${ready}; spec from ${want.source}` };
        }),

        step("egress-check", async (ctx) => {
          if (await isConverged(ctx)) return skippedConverged;
          const check = target.egressCheck;
          if (!check) return { status: "skipped", detail: "no egressCheck configured" };
          const expected = check.expect[action.to];
          if (action.dryRun)
            return { status: "skipped", detail: `dry run: would expect ${expected} from ${check.url}` };
          const deadline = ctx.now() + check.timeoutSeconds * 1000;
          let last = "";
          let lastAnswer: string | undefined;
          for (;;) {
            ctx.signal.throwIfAborted();
            const remaining = Math.max(1, deadline - ctx.now());
            try {
              const res = await doFetch(check.url, {
                signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(remaining)]),
              });
              const body = (await res.text()).trim();
              if (res.ok && body === expected)
                return { detail: `GET ${check.url} → ${body} (${action.to} NAT address)` };
              last = res.ok ? `answered ${JSON.stringify(body.slice(0, 100))}` : `answered HTTP ${res.status}`;
              lastAnswer = last;
            } catch (err) {
              if (ctx.signal.aborted) throw err;
              last = `failed: ${describeFetchError(err)}`;
            }
            // Wait before the next attempt, but never start one with almost no time left.
            const wait = Math.min(500, deadline - ctx.now());
            if (wait < 50) {
              throw new StepError(
                "egress-mismatch",
                `GET ${check.url} ${lastAnswer ?? last}; expected ${expected} (the ${action.to} NAT address) within ${check.timeoutSeconds}s`,
              );
            }
            ctx.progress(`egress check: ${last}; retrying`);
            await ctx.sleep(wait);
          }
        }),
      ];
    },
  };
}
