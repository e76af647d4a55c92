/**
 * A simulated DigitalOcean k8s-staticroute-operator (runbook A) for tests and the sandbox: one
 * simulated operator pod per node of the operator DaemonSet, each talking to the Kubernetes API
 * through the real client (list + watch of StaticRoutes, status patches, Events), and keeping an
 * in-memory routing table for its node that tests can inspect.
 *
 * Behaviour copied from the real operator (digitalocean/k8s-staticroute-operator,
 * controller/static-route-handler.py, constants.py) and kopf:
 * - create/resume handler `create_fn` adds every destination via the gateway (`ip route add`,
 *   which fails when the destination is already routed, e.g. by the other StaticRoute);
 * - update handler `update_fn` diffs only `destinations`: removed ones are deleted, added ones are
 *   added via the *new* gateway, and a change of `spec.gateway` alone does nothing (issue #23);
 * - delete handler `delete` removes the destinations; kopf holds deletion with the finalizer
 *   `kopf.zalando.org/KopfFinalizerMarker` until the handler ran; here the finalizer is removed
 *   once every operator node has handled the deletion;
 * - `0.0.0.0/0` and `0.0.0.0` are refused.
 *
 * Shapes chosen (one result per node, since every pod of the DaemonSet handles the same object):
 * - status: `status.<handler id>.<node> = "Ready" | "NotReady"` with handler ids `create_fn`,
 *   `update_fn`, `delete` (kopf stores a handler's result under `status.<handler id>`), written
 *   through the `/status` subresource with a merge patch, so nodes never overwrite each other.
 * - Events: one core/v1 Event per handler run per node in namespace `default` (kopf's namespace for
 *   cluster-scoped objects), reason `RouteCreateSucceeded` | `RouteCreateFailed` |
 *   `RouteDeleteSucceeded` | `RouteDeleteFailed` (type Warning for failures), `involvedObject` =
 *   the StaticRoute (apiVersion, kind, name, uid), `source` = {component: "kopf", host: node},
 *   `reportingComponent` "kopf", `reportingInstance` = node. (The real operator posts one Event
 *   per destination; one per run keeps 2,000-destination routes cheap and says the same.)
 *
 * Per node, the simulation can be `ok`, `fail` (handlers post the *Failed reasons and NotReady) or
 * `silent` (never handles, never reports: a hung pod). A node whose pod is not Ready is silent too.
 */
import { randomBytes } from "node:crypto";
import * as k8s from "@kubernetes/client-node";
import { z } from "zod";
import {
  KOPF_FINALIZER,
  ROUTE_EVENT_REASONS,
  STATIC_ROUTE,
  STATIC_ROUTE_API_VERSION,
  type StaticRouteObject,
  StaticRouteObjectSchema,
} from "../executors/route-swap.ts";

/** How a simulated operator pod behaves. */
export type OperatorNodeMode = "ok" | "fail" | "silent";

/** One entry of a node's simulated routing table. */
export interface RouteEntry {
  destination: string;
  gateway: string;
  /** Name of the StaticRoute that added it. */
  route: string;
}

export interface StaticRouteOperatorOptions {
  /** Credentials the simulated operator pods use. */
  kubeConfig: k8s.KubeConfig;
  /** Namespace and name of the operator DaemonSet whose pods are simulated. */
  namespace?: string;
  daemonSet?: string;
  /** Time each handler run takes before it reports (default 200 ms). */
  delayMs?: number;
  /** Namespace the Events go to (default "default", as kopf does for cluster-scoped objects). */
  eventsNamespace?: string;
  /** Per-node behaviour (default `ok`). */
  modes?: Record<string, OperatorNodeMode>;
  /**
   * `per-node` (default): one Event per handler run naming the node, `status.<handler>.<node>`.
   * `kopf`: what the real operator writes: one Event per destination with `reportingInstance: "dev"`
   * and no host, and `status.<handler>` = a list of {destination, gateway, status} (last writer wins).
   */
  reporting?: "per-node" | "kopf";
}

export interface StaticRouteOperators {
  /** Nodes with a simulated operator pod. */
  nodes(): string[];
  /** A node's routing table, sorted by destination. */
  table(node: string): RouteEntry[];
  /** Changes a node's behaviour from now on. */
  setMode(node: string, mode: OperatorNodeMode): void;
  /** Counts of handler runs per node (create, update, delete). */
  runs(node: string): { create: number; update: number; delete: number };
  /** Resolves once no simulated pod has a handler queued or running. */
  idle(): Promise<void>;
  /** Stops every watch and pending handler. */
  stop(): Promise<void>;
}

const PodListItem = z.object({ pod: z.string(), node: z.string() });

interface Handled {
  name: string;
  destinations: Set<string>;
  gateway: string;
}

function defaultRoute(dest: string): boolean {
  return dest === "0.0.0.0/0" || dest === "0.0.0.0";
}

/** The Event reason of a handler run (or, in `kopf` reporting, of one destination). */
function eventReason(op: "create" | "delete", ok: boolean): string {
  if (op === "create") return ok ? ROUTE_EVENT_REASONS.createSucceeded : ROUTE_EVENT_REASONS.createFailed;
  return ok ? ROUTE_EVENT_REASONS.deleteSucceeded : ROUTE_EVENT_REASONS.deleteFailed;
}

/** Starts one simulated operator pod per pod of the operator DaemonSet. */
export async function startStaticRouteOperators(options: StaticRouteOperatorOptions): Promise<StaticRouteOperators> {
  const namespace = options.namespace ?? "static-routes";
  const dsName = options.daemonSet ?? "k8s-staticroute-operator";
  const delayMs = options.delayMs ?? 200;
  const eventsNamespace = options.eventsNamespace ?? "default";
  const reporting = options.reporting ?? "per-node";
  const kc = options.kubeConfig;
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const mergePatch = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

  const ds = await apps.readNamespacedDaemonSet({ namespace, name: dsName });
  const labelSelector = Object.entries(ds.spec?.selector.matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  const podList = await core.listNamespacedPod({ namespace, ...(labelSelector ? { labelSelector } : {}) });
  const pods = podList.items.map((p) => PodListItem.parse({ pod: p.metadata?.name, node: p.spec?.nodeName }));

  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  const stoppers: (() => void)[] = [];
  const sims = new Map<string, NodeSim>();
  let idleWaiters: (() => void)[] = [];
  const isIdle = () => stopped || [...sims.values()].every((s) => s.queued.size === 0);
  const notifyIdle = () => {
    if (!isIdle()) return;
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const w of waiters) w();
  };

  const delay = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  class NodeSim {
    readonly node: string;
    readonly pod: string;
    mode: OperatorNodeMode;
    readonly table = new Map<string, RouteEntry & { uid: string }>();
    readonly handled = new Map<string, Handled>();
    readonly deleted = new Set<string>();
    readonly latest = new Map<string, StaticRouteObject>();
    readonly queued = new Set<string>();
    readonly counts = { create: 0, update: 0, delete: 0 };
    private chain: Promise<void> = Promise.resolve();

    constructor(pod: string, node: string, mode: OperatorNodeMode) {
      this.pod = pod;
      this.node = node;
      this.mode = mode;
    }

    /** Is this pod able to work right now (mode and pod readiness, read through the API)? */
    private async active(): Promise<boolean> {
      if (this.mode === "silent") return false;
      try {
        const p = await core.readNamespacedPod({ namespace, name: this.pod });
        return (p.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
      } catch {
        return false;
      }
    }

    observe(obj: StaticRouteObject): void {
      const uid = obj.metadata.uid;
      if (!uid || stopped) return;
      this.latest.set(uid, obj);
      if (this.queued.has(uid)) return;
      this.queued.add(uid);
      this.chain = this.chain
        .then(() => this.reconcile(uid))
        .catch(() => {
          // An API error in a handler: kopf would retry on the next event, and so does this.
        })
        .finally(() => {
          this.queued.delete(uid);
          notifyIdle();
        });
    }

    forget(uid: string): void {
      this.latest.delete(uid);
    }

    private async reconcile(uid: string): Promise<void> {
      let obj = this.latest.get(uid);
      if (!obj || this.deleted.has(uid) || stopped) return;
      if (!(await this.active())) return;
      const deleting = obj.metadata.deletionTimestamp != null;
      const prior = this.handled.get(uid);
      if (!deleting && prior) {
        const want = new Set(obj.spec.destinations);
        const same = want.size === prior.destinations.size && [...want].every((d) => prior.destinations.has(d));
        if (same) return; // a gateway-only change does nothing, as in the real update handler
      }
      if (!deleting && !prior && !(obj.metadata.finalizers ?? []).includes(KOPF_FINALIZER)) {
        await custom.patchClusterCustomObject(
          {
            ...STATIC_ROUTE,
            name: obj.metadata.name,
            body: { metadata: { finalizers: [...(obj.metadata.finalizers ?? []), KOPF_FINALIZER] } },
          },
          mergePatch,
        );
      }
      await delay(delayMs);
      if (stopped) return;
      obj = this.latest.get(uid) ?? obj;
      if (obj.metadata.deletionTimestamp != null) await this.runDelete(uid, obj);
      else if (this.handled.has(uid)) await this.runUpdate(uid, obj);
      else await this.runCreate(uid, obj);
      // Something changed while this run waited: handle it too.
      const newer = this.latest.get(uid);
      if (newer && newer !== obj && !stopped) {
        this.queued.delete(uid);
        this.observe(newer);
      }
    }

    private add(uid: string, route: string, dests: Iterable<string>, gateway: string): string[] {
      const failed: string[] = [];
      for (const d of dests) {
        if (this.mode === "fail" || defaultRoute(d) || this.table.has(d)) failed.push(d);
        else this.table.set(d, { destination: d, gateway, route, uid });
      }
      return failed;
    }

    private remove(uid: string, dests: Iterable<string>): string[] {
      const failed: string[] = [];
      for (const d of dests) {
        if (this.mode === "fail") failed.push(d);
        else if (this.table.get(d)?.uid === uid) this.table.delete(d);
      }
      return failed;
    }

    private async runCreate(uid: string, obj: StaticRouteObject): Promise<void> {
      this.counts.create++;
      const failed = this.add(uid, obj.metadata.name, obj.spec.destinations, obj.spec.gateway);
      this.handled.set(uid, {
        name: obj.metadata.name,
        destinations: new Set(obj.spec.destinations),
        gateway: obj.spec.gateway,
      });
      await this.report(obj, "create_fn", "create", failed);
    }

    private async runUpdate(uid: string, obj: StaticRouteObject): Promise<void> {
      const prior = this.handled.get(uid);
      if (!prior) return;
      this.counts.update++;
      const want = new Set(obj.spec.destinations);
      const failed = [
        ...this.remove(
          uid,
          [...prior.destinations].filter((d) => !want.has(d)),
        ),
        ...this.add(
          uid,
          obj.metadata.name,
          [...want].filter((d) => !prior.destinations.has(d)),
          obj.spec.gateway,
        ),
      ];
      this.handled.set(uid, { name: obj.metadata.name, destinations: want, gateway: obj.spec.gateway });
      await this.report(obj, "update_fn", "create", failed);
    }

    private async runDelete(uid: string, obj: StaticRouteObject): Promise<void> {
      this.counts.delete++;
      const failed = this.remove(uid, obj.spec.destinations);
      if (failed.length === 0) {
        this.deleted.add(uid);
        this.handled.delete(uid);
      }
      const after = await this.report(obj, "delete", "delete", failed);
      if (failed.length > 0 || !after) return;
      // The last node to finish releases the finalizer (kopf removes it once its handlers are done).
      if ([...sims.values()].every((s) => s.deleted.has(uid))) {
        const rest = (after.metadata.finalizers ?? []).filter((f) => f !== KOPF_FINALIZER);
        try {
          await custom.patchClusterCustomObject(
            { ...STATIC_ROUTE, name: obj.metadata.name, body: { metadata: { finalizers: rest } } },
            mergePatch,
          );
        } catch (err) {
          if (!(err instanceof k8s.ApiException && err.code === 404)) throw err;
        }
      }
    }

    /** Posts the run's Event and writes `status.<handler>.<node>`; returns the updated object. */
    private async report(
      obj: StaticRouteObject,
      handler: "create_fn" | "update_fn" | "delete",
      op: "create" | "delete",
      failed: string[],
    ): Promise<StaticRouteObject | undefined> {
      const ok = failed.length === 0;
      const bad = new Set(failed);
      const verb = op === "create" ? "add" : "del";
      const total = obj.spec.destinations.length;
      const message = ok
        ? `Success - ${total} destinations, gateway: ${obj.spec.gateway}, operation: ${verb}.`
        : `Route ${verb} failed for ${failed.length}/${total} destinations (first: ${failed.slice(0, 3).join(", ")}) on node ${this.node}.`;
      const now = new Date();
      const involvedObject = {
        apiVersion: STATIC_ROUTE_API_VERSION,
        kind: "StaticRoute",
        name: obj.metadata.name,
        uid: obj.metadata.uid,
      };
      const post = (body: k8s.CoreV1Event) => core.createNamespacedEvent({ namespace: eventsNamespace, body });
      if (reporting === "per-node") {
        await post({
          metadata: { name: `${obj.metadata.name}.${randomBytes(8).toString("hex")}`, namespace: eventsNamespace },
          involvedObject,
          reason: eventReason(op, ok),
          message,
          type: ok ? "Normal" : "Warning",
          source: { component: "kopf", host: this.node },
          reportingComponent: "kopf",
          reportingInstance: this.node,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        });
      } else {
        // kopf posting.py: generateName "kopf-event-", reportingInstance "dev", no host; one per destination.
        for (const d of obj.spec.destinations) {
          const good = !bad.has(d);
          await post({
            metadata: { name: `kopf-event-${randomBytes(6).toString("hex")}`, namespace: eventsNamespace },
            involvedObject,
            reason: eventReason(op, good),
            message: good
              ? `Success - Dest: ${d}, gateway: ${obj.spec.gateway}, operation: ${verb}.`
              : `Route ${verb} failed! Error message: (simulated)`,
            type: good ? "Normal" : "Error",
            source: { component: "kopf" },
            reportingComponent: "kopf",
            reportingInstance: "dev",
            firstTimestamp: now,
            lastTimestamp: now,
          });
        }
      }
      const statusValue =
        reporting === "per-node"
          ? { [this.node]: ok ? "Ready" : "NotReady" }
          : obj.spec.destinations.map((d) => ({
              destination: d,
              gateway: obj.spec.gateway,
              status: bad.has(d) ? "NotReady" : "Ready",
            }));
      try {
        const raw: unknown = await custom.patchClusterCustomObjectStatus(
          { ...STATIC_ROUTE, name: obj.metadata.name, body: { status: { [handler]: statusValue } } },
          mergePatch,
        );
        return StaticRouteObjectSchema.parse(raw);
      } catch (err) {
        if (err instanceof k8s.ApiException && err.code === 404) return undefined;
        throw err;
      }
    }
  }

  for (const { pod, node } of pods) sims.set(node, new NodeSim(pod, node, options.modes?.[node] ?? "ok"));

  /** List + watch for one simulated pod, re-listing after the watch ends or expires. */
  const runWatch = async (sim: NodeSim): Promise<void> => {
    if (stopped) return;
    const restart = () => {
      if (!stopped) void delay(50).then(() => runWatch(sim));
    };
    try {
      const list = z
        .object({
          metadata: z.object({ resourceVersion: z.string().optional() }).loose().optional(),
          items: z.array(z.unknown()),
        })
        .parse(await custom.listClusterCustomObject({ ...STATIC_ROUTE }));
      for (const item of list.items) sim.observe(StaticRouteObjectSchema.parse(item));
      const watch = new k8s.Watch(kc);
      const ctl = await watch.watch(
        `/apis/${STATIC_ROUTE.group}/${STATIC_ROUTE.version}/${STATIC_ROUTE.plural}`,
        { allowWatchBookmarks: true, resourceVersion: list.metadata?.resourceVersion },
        (phase: string, obj: unknown) => {
          if (phase === "BOOKMARK" || phase === "ERROR") return;
          const parsed = StaticRouteObjectSchema.safeParse(obj);
          if (!parsed.success) return;
          if (phase === "DELETED") {
            const uid = parsed.data.metadata.uid;
            if (uid) sim.forget(uid);
            return;
          }
          sim.observe(parsed.data);
        },
        () => restart(),
      );
      if (stopped) ctl.abort();
      else stoppers.push(() => ctl.abort());
    } catch {
      restart();
    }
  };

  await Promise.all([...sims.values()].map((s) => runWatch(s)));

  const simOn = (node: string): NodeSim => {
    const sim = sims.get(node);
    if (!sim) throw new Error(`no simulated operator pod on node ${node}`);
    return sim;
  };

  return {
    nodes: () => [...sims.keys()].sort(),
    table(node) {
      return [...simOn(node).table.values()]
        .map(({ destination, gateway, route }) => ({ destination, gateway, route }))
        .sort((a, b) => (a.destination < b.destination ? -1 : a.destination > b.destination ? 1 : 0));
    },
    setMode(node, mode) {
      simOn(node).mode = mode;
    },
    runs: (node) => ({ ...simOn(node).counts }),
    idle: () =>
      new Promise<void>((resolve) => {
        if (isIdle()) resolve();
        else idleWaiters.push(resolve);
      }),
    async stop() {
      stopped = true;
      notifyIdle();
      for (const s of stoppers) s();
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
}
