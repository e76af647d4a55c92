/**
 * The simulated node control plane of the sandbox (design §7 node-fence, §9): what the scheduler,
 * the node lifecycle controller, the pod garbage collector, the attach-detach controller and the
 * kubelets do with nodes, pods and VolumeAttachments, driven by the fake API store's watch events.
 *
 * - Node readiness: {@link ControlPlane.setNodeReady} (or anyone patching `status.conditions`, e.g.
 *   `kubectl patch node N --subresource=status`) changes the `Ready` condition; a transition gets a
 *   fresh `lastTransitionTime` when the writer gave none. A node that is not Ready gets the
 *   `node.kubernetes.io/unreachable` NoSchedule and NoExecute taints and its pods are marked not
 *   Ready (node lifecycle controller); back to Ready, the taints go and its pods report Ready again.
 *   Without the out-of-service taint nothing else happens: no pod is deleted (the default 300 s
 *   eviction is not simulated, and a StatefulSet pod on a lost node stays forever in Kubernetes).
 * - Non-graceful node shutdown (https://kubernetes.io/docs/concepts/cluster-administration/node-shutdown/):
 *   on a node that is not Ready *and* carries `node.kubernetes.io/out-of-service`, every pod but
 *   DaemonSet pods is force-deleted and the node's VolumeAttachments are removed. (Kubernetes' pod
 *   GC would delete DaemonSet pods too; the contract keeps them, and the executor never waits for them.)
 * - Scheduler: binds unbound Deployment/StatefulSet pods (created Pending by agent/sandbox/workloads.ts
 *   with `externallyScheduled`) to a Ready node that is not cordoned and has no NoSchedule/NoExecute
 *   taint, honouring `nodeSelector` and preferring the nodes of
 *   `affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution` (then the least loaded).
 * - Volumes: a pod of a StatefulSet with `volumeClaimTemplates` uses one ReadWriteOnce volume per
 *   pod identity (`pv-<namespace>-<pod>`); binding it creates a VolumeAttachment to the node,
 *   attached after `attachDelayMs`, unless the volume is still attached to another node (the
 *   Multi-Attach error that keeps StatefulSet pods from moving off a lost node).
 * - Kubelet: a bound pod on a Ready node with its volume attached turns Ready after `podReadyDelayMs`.
 */
import { createHash } from "node:crypto";
import { type FakeStore, type KubeObject, rfc3339Seconds, type TypeRef } from "./fake-kube-api.ts";
import { isJsonObject, type Json, type JsonObject } from "./kube-patch.ts";
import { parseLabelSelector } from "./kube-selectors.ts";

const NODES: TypeRef = { resource: "nodes" };
const PODS: TypeRef = { resource: "pods" };
const STATEFULSETS: TypeRef = { group: "apps", resource: "statefulsets" };
const VOLUME_ATTACHMENTS: TypeRef = { group: "storage.k8s.io", resource: "volumeattachments" };
const EVENTS: TypeRef = { resource: "events", version: "v1" };
/** The CSI driver name of the sandbox's simulated volumes. */
export const SANDBOX_ATTACHER = "sandbox.csi.turnout.dev";
const OUT_OF_SERVICE = "node.kubernetes.io/out-of-service";
const UNREACHABLE = "node.kubernetes.io/unreachable";

export interface ControlPlaneOptions {
  /** Delay between a pod being bound with its volume attached and it turning Ready (default 500 ms). */
  podReadyDelayMs?: number;
  /** Delay before a new VolumeAttachment reports attached (default 100 ms). */
  attachDelayMs?: number;
  /** The clock for lastTransitionTime (default Date.now). */
  now?: () => number;
  /** Unexpected errors in a pass (default: ignored; the next event retries). */
  onError?: (error: unknown) => void;
}

export interface ControlPlane {
  /** Makes a node Ready or not (`Unknown`: the kubelet stopped posting status, as when a datacenter goes dark). */
  setNodeReady(node: string, ready: boolean): void;
  /** Creates a Ready node with these labels (no-op when it exists). */
  addNode(name: string, labels: Record<string, string>): void;
  /** Resolves once no pass is queued and no attach or readiness timer is pending. */
  settled(): Promise<void>;
  stop(): void;
}

function obj(value: unknown): JsonObject {
  return isJsonObject(value) ? value : {};
}

function arr(value: unknown): Json[] {
  return Array.isArray(value) ? value : [];
}

function readyStatus(node: KubeObject): string | undefined {
  const c = arr(obj(node.status).conditions).find((x) => isJsonObject(x) && x.type === "Ready");
  return isJsonObject(c) && typeof c.status === "string" ? c.status : undefined;
}

function taints(node: KubeObject): JsonObject[] {
  return arr(obj(node.spec).taints).filter(isJsonObject);
}

function owner(pod: KubeObject): { kind: string; name: string } | undefined {
  for (const r of arr(pod.metadata.ownerReferences)) {
    if (isJsonObject(r) && r.controller === true && typeof r.kind === "string" && typeof r.name === "string") {
      return { kind: r.kind, name: r.name };
    }
  }
  return undefined;
}

function podReady(pod: KubeObject): boolean {
  return arr(obj(pod.status).conditions).some((c) => isJsonObject(c) && c.type === "Ready" && c.status === "True");
}

function nodeOf(pod: KubeObject): string | undefined {
  const n = obj(pod.spec).nodeName;
  return typeof n === "string" && n !== "" ? n : undefined;
}

/** Whether `labels` satisfy one nodeSelectorTerm's matchExpressions (In, NotIn, Exists, DoesNotExist). */
function termMatches(term: JsonObject, labels: Record<string, string>): boolean {
  return arr(term.matchExpressions).every((e) => {
    if (!isJsonObject(e) || typeof e.key !== "string") return false;
    const values = arr(e.values).filter((v): v is string => typeof v === "string");
    const has = e.key in labels;
    switch (e.operator) {
      case "In":
        return has && values.includes(labels[e.key] ?? "");
      case "NotIn":
        return !has || !values.includes(labels[e.key] ?? "");
      case "Exists":
        return has;
      case "DoesNotExist":
        return !has;
      default:
        return false;
    }
  });
}

/** Starts the simulated control plane on `store`. */
export function startControlPlane(store: FakeStore, options: ControlPlaneOptions = {}): ControlPlane {
  const now = options.now ?? Date.now;
  const podReadyDelayMs = options.podReadyDelayMs ?? 500;
  const attachDelayMs = options.attachDelayMs ?? 100;
  const timers = new Map<string, NodeJS.Timeout>();
  /** The Ready status last acted on, per node, to act on transitions only. */
  const lastReady = new Map<string, string | undefined>();
  /** Multi-Attach warnings already recorded (pod uid / volume), so each is posted once. */
  const warned = new Set<string>();
  const unsubscribes: (() => void)[] = [];
  let queued = false;
  let stopped = false;
  let waiters: (() => void)[] = [];

  const idle = () => !queued && timers.size === 0;
  const notify = () => {
    if (!idle()) return;
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };

  function queue(): void {
    if (queued || stopped) return;
    queued = true;
    setImmediate(() => {
      queued = false;
      if (stopped) return;
      try {
        pass();
      } catch (e) {
        options.onError?.(e);
      }
      setImmediate(notify);
    });
  }

  function later(key: string, ms: number, fn: () => void): void {
    if (timers.has(key)) return;
    timers.set(
      key,
      setTimeout(() => {
        timers.delete(key);
        if (stopped) return;
        try {
          fn();
        } catch (e) {
          options.onError?.(e);
        }
        queue();
        notify();
      }, ms),
    );
  }

  /** Records a core/v1 Event as the named component would (kubectl get events / describe show them). */
  function event(
    involved: { kind: string; namespace?: string; name: string; uid?: string },
    type: "Normal" | "Warning",
    reason: string,
    message: string,
    component: string,
  ): void {
    const namespace = involved.namespace ?? "default";
    const ts = rfc3339Seconds(now());
    try {
      store.create(EVENTS, {
        metadata: { generateName: `${involved.name}.`, namespace },
        involvedObject: {
          kind: involved.kind,
          name: involved.name,
          ...(involved.namespace ? { namespace: involved.namespace } : {}),
          ...(involved.uid ? { uid: involved.uid } : {}),
        },
        type,
        reason,
        message,
        source: { component },
        firstTimestamp: ts,
        lastTimestamp: ts,
        count: 1,
      });
    } catch {
      // The namespace is gone: nobody is left to read the event.
    }
  }

  function setPodReady(pod: KubeObject, ready: boolean): void {
    const ns = pod.metadata.namespace ?? "";
    const name = pod.metadata.name ?? "";
    if (!store.get(PODS, ns, name)) return;
    store.mutate(
      PODS,
      ns,
      name,
      (p) => {
        const scheduled = { type: "PodScheduled", status: "True" };
        p.status = {
          ...obj(p.status),
          phase: "Running",
          conditions: [scheduled, { type: "Ready", status: ready ? "True" : "False" }],
        };
      },
      { subresource: "status" },
    );
  }

  function volumeOf(pod: KubeObject): string | undefined {
    const o = owner(pod);
    if (o?.kind !== "StatefulSet") return undefined;
    const sts = store.get(STATEFULSETS, pod.metadata.namespace, o.name);
    if (!sts || arr(obj(sts.spec).volumeClaimTemplates).length === 0) return undefined;
    return `pv-${pod.metadata.namespace ?? ""}-${pod.metadata.name ?? ""}`;
  }

  function attachmentName(pv: string, node: string): string {
    return `csi-${createHash("sha256").update(`${SANDBOX_ATTACHER}/${pv}/${node}`).digest("hex").slice(0, 16)}`;
  }

  function schedulable(node: KubeObject): boolean {
    return (
      readyStatus(node) === "True" &&
      obj(node.spec).unschedulable !== true &&
      !taints(node).some((t) => t.effect === "NoSchedule" || t.effect === "NoExecute")
    );
  }

  function choose(pod: KubeObject, nodes: KubeObject[], pods: KubeObject[]): KubeObject | undefined {
    const spec = obj(pod.spec);
    const selector = Object.entries(obj(spec.nodeSelector))
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(",");
    const matchesSelector = parseLabelSelector(selector);
    const preferred = arr(obj(obj(spec.affinity).nodeAffinity).preferredDuringSchedulingIgnoredDuringExecution).filter(
      isJsonObject,
    );
    const score = (n: KubeObject) =>
      preferred.reduce(
        (sum, p) =>
          sum +
          (termMatches(obj(p.preference), n.metadata.labels ?? {}) ? (typeof p.weight === "number" ? p.weight : 1) : 0),
        0,
      );
    const load = (n: KubeObject) => pods.filter((p) => nodeOf(p) === n.metadata.name).length;
    return nodes
      .filter((n) => schedulable(n) && matchesSelector(n.metadata.labels))
      .sort(
        (a, b) =>
          score(b) - score(a) || load(a) - load(b) || (a.metadata.name ?? "").localeCompare(b.metadata.name ?? ""),
      )[0];
  }

  function pass(): void {
    const nodes = store.list(NODES);
    const pods = store.list(PODS);
    const attachments = store.list(VOLUME_ATTACHMENTS);
    const byName = new Map(nodes.map((n) => [n.metadata.name ?? "", n]));

    for (const node of nodes) {
      const name = node.metadata.name ?? "";
      const ready = readyStatus(node);
      const up = ready === "True";
      // Node lifecycle controller: taints and pod readiness follow a Ready transition.
      if (lastReady.get(name) !== ready || !lastReady.has(name)) {
        const first = !lastReady.has(name);
        lastReady.set(name, ready);
        const condition = arr(obj(node.status).conditions).find((c) => isJsonObject(c) && c.type === "Ready");
        if (!first && isJsonObject(condition) && typeof condition.lastTransitionTime !== "string") {
          // A person's `kubectl patch --subresource=status` rarely carries the time; the kubelet's would.
          store.mutate(
            NODES,
            undefined,
            name,
            (n) => {
              const conditions = arr(obj(n.status).conditions).map((c) =>
                isJsonObject(c) && c.type === "Ready" ? { ...c, lastTransitionTime: rfc3339Seconds(now()) } : c,
              );
              n.status = { ...obj(n.status), conditions };
            },
            { subresource: "status" },
          );
        }
        if (!first) {
          event(
            { kind: "Node", name, uid: node.metadata.uid },
            up ? "Normal" : "Warning",
            up ? "NodeReady" : "NodeNotReady",
            `Node ${name} status is now: ${up ? "NodeReady" : "NodeNotReady"}`,
            "node-controller",
          );
        }
        const hasUnreachable = taints(node).some((t) => t.key === UNREACHABLE);
        if (up === hasUnreachable) {
          store.mutate(NODES, undefined, name, (n) => {
            const rest = taints(n).filter((t) => t.key !== UNREACHABLE);
            const added: JsonObject[] = up
              ? []
              : [
                  { key: UNREACHABLE, effect: "NoSchedule" },
                  { key: UNREACHABLE, effect: "NoExecute", timeAdded: rfc3339Seconds(now()) },
                ];
            const next = [...rest, ...added];
            const spec: JsonObject = { ...obj(n.spec), taints: next };
            if (next.length === 0) delete spec.taints;
            n.spec = spec;
          });
        }
        if (!first || !up) {
          for (const p of pods) {
            if (nodeOf(p) !== name || p.metadata.deletionTimestamp !== undefined) continue;
            if (!up && podReady(p)) setPodReady(p, false);
            // Back up: DaemonSet and other pods that were running there report Ready again.
            if (up && !podReady(p) && obj(p.status).phase === "Running") setPodReady(p, true);
          }
        }
      }
      // Non-graceful node shutdown: the out-of-service taint on a node that is not Ready.
      if (!up && taints(node).some((t) => t.key === OUT_OF_SERVICE)) {
        for (const p of pods) {
          if (nodeOf(p) !== name || owner(p)?.kind === "DaemonSet") continue;
          try {
            store.delete(PODS, p.metadata.namespace, p.metadata.name ?? "");
            event(
              { kind: "Node", name, uid: node.metadata.uid },
              "Normal",
              "DeletingPod",
              `Force-deleted pod ${p.metadata.namespace}/${p.metadata.name}: node is out of service and not Ready`,
              "pod-garbage-collector",
            );
          } catch {
            // already gone
          }
        }
        for (const va of attachments) {
          if (obj(va.spec).nodeName !== name) continue;
          try {
            store.delete(VOLUME_ATTACHMENTS, undefined, va.metadata.name ?? "");
          } catch {
            // already gone
          }
        }
      }
    }

    const live = store.list(PODS).filter((p) => p.metadata.deletionTimestamp === undefined);
    const vas = store.list(VOLUME_ATTACHMENTS);
    for (const pod of live) {
      const o = owner(pod);
      let node = nodeOf(pod);
      // Scheduler: unbound pods of Deployments/StatefulSets (workloads.ts `externallyScheduled`).
      if (node === undefined) {
        if (o?.kind !== "StatefulSet" && o?.kind !== "ReplicaSet" && o?.kind !== "Deployment") continue;
        if (obj(pod.status).phase !== "Pending") continue;
        const chosen = choose(pod, nodes, live);
        if (!chosen) continue;
        node = chosen.metadata.name ?? "";
        store.mutate(PODS, pod.metadata.namespace, pod.metadata.name ?? "", (p) => {
          p.spec = { ...obj(p.spec), nodeName: node ?? "" };
        });
        pod.spec = { ...obj(pod.spec), nodeName: node };
        event(
          { kind: "Pod", namespace: pod.metadata.namespace, name: pod.metadata.name ?? "", uid: pod.metadata.uid },
          "Normal",
          "Scheduled",
          `Successfully assigned ${pod.metadata.namespace}/${pod.metadata.name} to ${node}`,
          "default-scheduler",
        );
      }
      const n = byName.get(node);
      if (!n || readyStatus(n) !== "True" || podReady(pod) || obj(pod.status).phase !== "Pending") continue;
      // Attach-detach controller: one node at a time for a ReadWriteOnce volume.
      const pv = volumeOf(pod);
      if (pv !== undefined) {
        const mine = vas.find(
          (va) => obj(obj(va.spec).source).persistentVolumeName === pv && obj(va.spec).nodeName === node,
        );
        const elsewhere = vas.some(
          (va) => obj(obj(va.spec).source).persistentVolumeName === pv && obj(va.spec).nodeName !== node,
        );
        if (!mine) {
          if (elsewhere) {
            // Multi-Attach error: the volume is still attached to another node.
            if (!warned.has(`${pod.metadata.uid}/${pv}`)) {
              warned.add(`${pod.metadata.uid}/${pv}`);
              event(
                {
                  kind: "Pod",
                  namespace: pod.metadata.namespace,
                  name: pod.metadata.name ?? "",
                  uid: pod.metadata.uid,
                },
                "Warning",
                "FailedAttachVolume",
                `Multi-Attach error for volume "${pv}" Volume is already exclusively attached to one node and can't be attached to another`,
                "attachdetach-controller",
              );
            }
            continue;
          }
          const vaName = attachmentName(pv, node);
          store.create(VOLUME_ATTACHMENTS, {
            apiVersion: "storage.k8s.io/v1",
            kind: "VolumeAttachment",
            metadata: { name: vaName },
            spec: { attacher: SANDBOX_ATTACHER, nodeName: node, source: { persistentVolumeName: pv } },
          });
          later(`attach/${vaName}`, attachDelayMs, () => {
            if (!store.get(VOLUME_ATTACHMENTS, undefined, vaName)) return;
            store.mutate(
              VOLUME_ATTACHMENTS,
              undefined,
              vaName,
              (va) => {
                va.status = { attached: true };
              },
              { subresource: "status" },
            );
            event(
              { kind: "Pod", namespace: pod.metadata.namespace, name: pod.metadata.name ?? "", uid: pod.metadata.uid },
              "Normal",
              "SuccessfulAttachVolume",
              `AttachVolume.Attach succeeded for volume "${pv}"`,
              "attachdetach-controller",
            );
          });
          continue;
        }
        if (obj(mine.status).attached !== true) continue;
      }
      // Kubelet: containers start, the readiness probe passes.
      const uid = pod.metadata.uid ?? "";
      later(`ready/${uid}`, podReadyDelayMs, () => {
        const current = store.get(PODS, pod.metadata.namespace, pod.metadata.name ?? "");
        if (!current || current.metadata.uid !== uid || nodeOf(current) !== node) return;
        const host = store.get(NODES, undefined, node ?? "");
        if (host && readyStatus(host) === "True") setPodReady(current, true);
      });
    }
  }

  for (const ref of [NODES, PODS, VOLUME_ATTACHMENTS]) unsubscribes.push(store.watch(ref, undefined, () => queue()));
  queue();

  return {
    setNodeReady(node, ready) {
      store.mutate(
        NODES,
        undefined,
        node,
        (n) => {
          const status = ready ? "True" : "Unknown";
          const conditions = arr(obj(n.status).conditions).filter(isJsonObject);
          const old = conditions.find((c) => c.type === "Ready");
          const changed = old?.status !== status;
          const ts = rfc3339Seconds(now());
          const ready_: JsonObject = {
            type: "Ready",
            status,
            reason: ready ? "KubeletReady" : "NodeStatusUnknown",
            message: ready ? "kubelet is posting ready status" : "Kubelet stopped posting node status.",
            lastHeartbeatTime: ts,
            lastTransitionTime: changed || typeof old?.lastTransitionTime !== "string" ? ts : old.lastTransitionTime,
          };
          n.status = { ...obj(n.status), conditions: [...conditions.filter((c) => c.type !== "Ready"), ready_] };
        },
        { subresource: "status" },
      );
    },
    addNode(name, labels) {
      if (store.get(NODES, undefined, name)) return;
      const ts = rfc3339Seconds(now());
      store.create(NODES, {
        metadata: { name, labels: { "kubernetes.io/hostname": name, ...labels } },
        status: {
          conditions: [
            { type: "Ready", status: "True", reason: "KubeletReady", lastHeartbeatTime: ts, lastTransitionTime: ts },
          ],
        },
      });
    },
    settled() {
      return new Promise<void>((resolve) => {
        waiters.push(resolve);
        setImmediate(notify);
      });
    },
    stop() {
      stopped = true;
      for (const u of unsubscribes) u();
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      notify();
    },
  };
}
