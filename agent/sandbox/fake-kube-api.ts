/**
 * A faithful fake Kubernetes API server over real HTTP (design §9, real-components.md §3): the
 * agent's real `@kubernetes/client-node` talks to it in tests and in the sandbox.
 *
 * Implemented semantics (those of kube-apiserver the agent and plans rely on, design §11.2):
 * - core/v1 configmaps, secrets, services, serviceaccounts, persistentvolumeclaims, events, pods,
 *   namespaces, nodes; apps/v1 deployments, daemonsets, statefulsets (+ `/scale`, `/status`);
 *   coordination.k8s.io/v1 leases; events.k8s.io/v1 events; storage.k8s.io/v1 volumeattachments
 *   (+ `/status`); the cluster-scoped custom resource networking.digitalocean.com/v1 staticroutes
 *   (+ `/status`); every kind of `@kubernetes-models/gateway-api` (agent/sandbox/gateway-api-types.ts);
 *   and any apiextensions.k8s.io/v1 CustomResourceDefinition stored in it, served from then on in
 *   each served version, pruned and validated by its schema, until it is deleted
 *   (agent/sandbox/custom-resource-definitions.ts, structural-schema.ts).
 * - Objects are stored once per group and resource; each served version reads and writes them
 *   (conversion `None`: only apiVersion differs).
 * - A write log (`writes`): every mutating request with its verb, kind, name, dryRun and answer.
 * - A global, monotonically increasing string `resourceVersion`; `uid`, `creationTimestamp`,
 *   `generation` (bumped when anything outside metadata/status changes). A write that changes
 *   nothing is a no-op (same resourceVersion, no watch event), as in kube-apiserver.
 * - Namespaced objects need their namespace to exist (404), as in a real cluster.
 * - GET/LIST with label selectors (`=`, `==`, `!=`, exists, `in`, `notin`) and field selectors.
 * - POST (409 AlreadyExists), PUT (409 Conflict on a stale resourceVersion; 404 when absent),
 *   PATCH as JSON patch, merge patch, strategic merge patch and server-side apply (415 otherwise),
 *   DELETE (404 when absent; finalizers → `deletionTimestamp`, deleted when the last finalizer
 *   goes), `dryRun=All` on every write (nothing stored, no event), `Status` error bodies.
 * - Status subresource: writes to the main resource keep the stored status; `/status` writes
 *   change only the status.
 * - Discovery (`/version`, `/api`, `/apis`, each group-version's resource list, aggregated
 *   discovery: agent/sandbox/discovery.ts) and OpenAPI v3 (agent/sandbox/openapi.ts), and
 *   server-side printing (`Accept: …;as=Table`) for kubectl; `fieldValidation` (kubectl's
 *   Strict); SelfSubjectAccessReviews answered (allowed, unless `access` says otherwise).
 * - Watches: newline-delimited `{type, object}`; `resourceVersion=N` replays the bounded history
 *   after N; a version older than the history yields kube-apiserver's in-stream
 *   `ERROR` event with a 410 `Expired` Status (or an HTTP 410 with `watchExpiredAs: "http"`);
 *   `allowWatchBookmarks=true` gets periodic BOOKMARK events, which also keep client-node's
 *   30 s inactivity timeout (real-components.md §3) from firing; `timeoutSeconds` ends the stream.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { parse as parseYaml } from "yaml";
import { ACCESS_REVIEW_PATH, answerAccessReview, RBAC_RESOURCES } from "./access-review.ts";
import { CRD_TYPE, crdProblems, crdResourceTypes, crdStatus } from "./custom-resource-definitions.ts";
import {
  aggregatedDiscovery,
  aggregatedDiscoveryType,
  apiGroupList,
  apiGroupOf,
  compareVersions,
  resourceList,
} from "./discovery.ts";
import { gatewayApiResourceTypes } from "./gateway-api-types.ts";
import {
  applyJsonPatch,
  applyMergePatch,
  applyStrategicMergePatch,
  deepEqual,
  isJsonObject,
  type Json,
  type JsonObject,
  PatchError,
} from "./kube-patch.ts";
import { parseFieldSelector, parseLabelSelector, SelectorError } from "./kube-selectors.ts";
import { openApiDocument, openApiIndex } from "./openapi.ts";
import { pruneAndValidate } from "./structural-schema.ts";

/** A resource type the fake server serves. */
export interface ResourceType {
  /** API group; "" for the core group. */
  group: string;
  version: string;
  /** Plural resource name, e.g. "deployments". */
  resource: string;
  kind: string;
  namespaced: boolean;
  /** Subresources served besides the main resource. */
  subresources?: ("status" | "scale")[];
  /** Singular name for discovery (default: the kind in lower case). */
  singular?: string;
  shortNames?: string[];
  categories?: string[];
  /** OpenAPI v3 schema of the whole object (a CRD version's `openAPIV3Schema`): writes are pruned
   * and validated by it, and `/openapi/v3` serves it. */
  schema?: JsonObject;
  /** Problems with an object about to be stored, answered 422 Invalid (e.g. a model's schema). */
  check?: (obj: KubeObject) => string[];
  /** A custom resource (CRD or Gateway API): `metadata.generation` from the first write. */
  custom?: boolean;
  /** The name of the CustomResourceDefinition that serves this type. */
  definedBy?: string;
  /** Where a custom resource keeps its replicas, for its `scale` subresource (CRD `subresources.scale`). */
  scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath?: string };
}

export { compareVersions };

/** The built-in types; add others with `resources` in {@link FakeKubeApiOptions}. */
export const BUILTIN_RESOURCES: readonly ResourceType[] = [
  { group: "", version: "v1", resource: "namespaces", kind: "Namespace", namespaced: false, subresources: ["status"] },
  { group: "", version: "v1", resource: "nodes", kind: "Node", namespaced: false, subresources: ["status"] },
  { group: "", version: "v1", resource: "configmaps", kind: "ConfigMap", namespaced: true, shortNames: ["cm"] },
  { group: "", version: "v1", resource: "secrets", kind: "Secret", namespaced: true },
  {
    group: "",
    version: "v1",
    resource: "services",
    kind: "Service",
    namespaced: true,
    subresources: ["status"],
    shortNames: ["svc"],
  },
  {
    group: "",
    version: "v1",
    resource: "serviceaccounts",
    kind: "ServiceAccount",
    namespaced: true,
    shortNames: ["sa"],
  },
  {
    group: "",
    version: "v1",
    resource: "persistentvolumeclaims",
    kind: "PersistentVolumeClaim",
    namespaced: true,
    subresources: ["status"],
    shortNames: ["pvc"],
  },
  { group: "", version: "v1", resource: "events", kind: "Event", namespaced: true },
  { group: "", version: "v1", resource: "pods", kind: "Pod", namespaced: true, subresources: ["status"] },
  {
    group: "apps",
    version: "v1",
    resource: "deployments",
    kind: "Deployment",
    namespaced: true,
    subresources: ["status", "scale"],
    shortNames: ["deploy"],
  },
  {
    group: "apps",
    version: "v1",
    resource: "statefulsets",
    kind: "StatefulSet",
    namespaced: true,
    subresources: ["status", "scale"],
    shortNames: ["sts"],
  },
  {
    group: "apps",
    version: "v1",
    resource: "daemonsets",
    kind: "DaemonSet",
    namespaced: true,
    subresources: ["status"],
    shortNames: ["ds"],
  },
  { group: "coordination.k8s.io", version: "v1", resource: "leases", kind: "Lease", namespaced: true },
  {
    group: "storage.k8s.io",
    version: "v1",
    resource: "volumeattachments",
    kind: "VolumeAttachment",
    namespaced: false,
    subresources: ["status"],
  },
  { group: "events.k8s.io", version: "v1", resource: "events", kind: "Event", namespaced: true },
  {
    group: "networking.digitalocean.com",
    version: "v1",
    resource: "staticroutes",
    kind: "StaticRoute",
    namespaced: false,
    subresources: ["status"],
  },
  CRD_TYPE,
  ...RBAC_RESOURCES,
];

/** Every kind of `@kubernetes-models/gateway-api`, served beside the built-in types. */
export const GATEWAY_API_RESOURCES: readonly ResourceType[] = gatewayApiResourceTypes();

/** Names a resource type: `{ resource: "configmaps" }`, `{ group: "apps", resource: "deployments" }`. */
export interface TypeRef {
  /** API group; "" (the default) for core. */
  group?: string;
  /** Defaults to the only registered version. */
  version?: string;
  resource: string;
}

/** Object metadata as stored (the fields the fake server maintains plus free-form ones). */
export interface KubeMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  managedFields?: Json[];
  [key: string]: Json | undefined;
}

/** A stored Kubernetes object (plain JSON). */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: KubeMeta;
  [key: string]: Json | KubeMeta | undefined;
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

export interface WatchEvent {
  type: WatchEventType;
  object: KubeObject;
}

/** An API error as kube-apiserver reports it (HTTP code + Status reason). */
export class KubeApiError extends Error {
  override readonly name = "KubeApiError";
  readonly code: number;
  readonly reason: string;
  readonly details: JsonObject | undefined;
  constructor(code: number, reason: string, message: string, details?: JsonObject) {
    super(message);
    this.code = code;
    this.reason = reason;
    this.details = details;
  }
  /** The `Status` body kube-apiserver sends for this error. */
  status(): JsonObject {
    return {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

export interface WriteOptions {
  /** `dryRun=All`: validate and return the would-be object; store nothing, emit nothing. */
  dryRun?: boolean;
  /** Write the `status` subresource instead of the main resource. */
  subresource?: "status";
  /** The `fieldManager` (required for apply; recorded in managedFields). */
  fieldManager?: string;
  /** `fieldValidation`: Strict refuses (400) fields a custom resource's schema does not declare;
   * otherwise they are pruned, as kube-apiserver does. */
  fieldValidation?: "Strict" | "Warn" | "Ignore";
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
}

export type PatchType = "json" | "merge" | "strategic" | "apply";

interface StoredEvent {
  rv: number;
  typeKey: string;
  type: WatchEventType;
  object: KubeObject;
}

interface Watcher {
  typeKey: string;
  /** The version the watcher asked for: events show objects in it. */
  type: ResourceType;
  namespace: string | undefined;
  listener: (event: WatchEvent) => void;
}

const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

function typeKeyOf(t: ResourceType): string {
  return `${t.group}/${t.version}/${t.resource}`;
}

/** Objects are stored once per group and resource, whichever served version wrote or reads them
 * (a CRD's versions share one storage, converted by `None`: only apiVersion changes). */
function storageKeyOf(t: ResourceType): string {
  return `${t.group}/${t.resource}`;
}

/** A copy of a stored object as `t`'s version shows it. */
function inVersion(t: ResourceType, o: KubeObject): KubeObject {
  const copy = structuredClone(o);
  if (copy.apiVersion !== undefined) copy.apiVersion = apiVersionOf(t);
  return copy;
}

function apiVersionOf(t: ResourceType): string {
  return t.group === "" ? t.version : `${t.group}/${t.version}`;
}

function groupResource(t: ResourceType): string {
  return t.group === "" ? t.resource : `${t.resource}.${t.group}`;
}

/** A timestamp as the API server writes one: RFC 3339 in whole seconds, UTC. */
export function rfc3339Seconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The object without the fields that change on every write, to detect no-op writes. */
function comparable(obj: KubeObject): Json {
  const { resourceVersion: _rv, managedFields: _mf, ...meta } = obj.metadata;
  return { ...(obj as JsonObject), metadata: meta as JsonObject };
}

/** Everything outside metadata and status: a change here bumps `generation`. */
function specPart(obj: KubeObject): Json {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = obj;
  return rest as JsonObject;
}

export interface FakeStoreOptions {
  resources?: readonly ResourceType[];
  /** Watch events kept for `resourceVersion` replays (default 1000). */
  historyLimit?: number;
  /** The clock for timestamps (default Date.now). */
  now?: () => number;
  /** Extra validation per resource plural (e.g. "staticroutes"); messages → 422 Invalid. */
  validators?: Record<string, (obj: KubeObject) => string[]>;
  /** Namespaces present at start (default: default, kube-system, kube-public, kube-node-lease). */
  namespaces?: string[];
}

/**
 * The fake server's object store, also used in-process by tests and simulated controllers. Every
 * method follows the same rules as the HTTP API and throws {@link KubeApiError} as it would answer.
 */
export class FakeStore {
  private readonly types = new Map<string, ResourceType>();
  private readonly objects = new Map<string, KubeObject>();
  private readonly history: StoredEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private rv = 1;
  private readonly historyLimit: number;
  private readonly now: () => number;
  private readonly validators: Record<string, (obj: KubeObject) => string[]>;

  constructor(options: FakeStoreOptions = {}) {
    for (const t of [...BUILTIN_RESOURCES, ...GATEWAY_API_RESOURCES, ...(options.resources ?? [])]) {
      this.types.set(typeKeyOf(t), t);
    }
    this.historyLimit = options.historyLimit ?? 1000;
    this.now = options.now ?? Date.now;
    this.validators = options.validators ?? {};
    for (const ns of options.namespaces ?? ["default", "kube-system", "kube-public", "kube-node-lease"]) {
      this.create({ resource: "namespaces" }, { metadata: { name: ns } });
    }
  }

  /** All registered types. */
  resourceTypes(): ResourceType[] {
    return [...this.types.values()];
  }

  /** Resolves a {@link TypeRef}; undefined when no such type is served. */
  findType(ref: TypeRef): ResourceType | undefined {
    const group = ref.group ?? "";
    if (ref.version) return this.types.get(`${group}/${ref.version}/${ref.resource}`);
    const versions = [...this.types.values()].filter((t) => t.group === group && t.resource === ref.resource);
    return versions.sort((a, b) => compareVersions(a.version, b.version))[0];
  }

  private type(ref: TypeRef): ResourceType {
    const t = this.findType(ref);
    if (!t)
      throw new KubeApiError(404, "NotFound", `the server could not find the requested resource (${ref.resource})`);
    return t;
  }

  /** The current (latest) resourceVersion. */
  get resourceVersion(): string {
    return String(this.rv);
  }

  private key(t: ResourceType, namespace: string | undefined, name: string): string {
    return `${storageKeyOf(t)}|${t.namespaced ? (namespace ?? "") : ""}|${name}`;
  }

  private notFound(t: ResourceType, name: string): KubeApiError {
    return new KubeApiError(404, "NotFound", `${groupResource(t)} "${name}" not found`, {
      name,
      group: t.group,
      kind: t.resource,
    });
  }

  private checkNamespace(t: ResourceType, namespace: string | undefined): void {
    if (!t.namespaced) return;
    if (!namespace) throw new KubeApiError(400, "BadRequest", "the namespace of the object is required");
    if (!this.objects.has(this.key(this.type({ resource: "namespaces" }), undefined, namespace))) {
      throw new KubeApiError(404, "NotFound", `namespaces "${namespace}" not found`, {
        name: namespace,
        kind: "namespaces",
      });
    }
  }

  /**
   * Checks an object about to be stored and returns it as it will be stored: a custom resource
   * pruned to its schema. Throws 422 Invalid (400 for unknown fields under `fieldValidation=Strict`).
   */
  private admit(t: ResourceType, input: KubeObject, options: WriteOptions = {}): KubeObject {
    let obj = input;
    const problems: string[] = [];
    if (t.schema) {
      const result = pruneAndValidate(obj as unknown as Json, t.schema);
      if (options.fieldValidation === "Strict" && result.unknown.length > 0) {
        throw new KubeApiError(
          400,
          "BadRequest",
          `strict decoding error: ${result.unknown.map((f) => `unknown field "${f}"`).join(", ")}`,
        );
      }
      obj = result.value as unknown as KubeObject;
      problems.push(...result.problems);
    }
    if (storageKeyOf(t) === storageKeyOf(CRD_TYPE)) problems.push(...crdProblems(obj));
    problems.push(...(t.check?.(obj) ?? []));
    const name = obj.metadata.name ?? "";
    if (!NAME_RE.test(name) || name.length > 253) {
      problems.push(
        `metadata.name: Invalid value: ${JSON.stringify(name)}: a lowercase RFC 1123 subdomain is required`,
      );
    }
    if (obj.apiVersion !== undefined && obj.apiVersion !== apiVersionOf(t)) {
      problems.push(`apiVersion: Invalid value: ${JSON.stringify(obj.apiVersion)}: must be ${apiVersionOf(t)}`);
    }
    if (obj.kind !== undefined && obj.kind !== t.kind) {
      problems.push(`kind: Invalid value: ${JSON.stringify(obj.kind)}: must be ${t.kind}`);
    }
    problems.push(...(this.validators[t.resource]?.(obj) ?? []));
    if (problems.length > 0) {
      throw new KubeApiError(422, "Invalid", `${t.kind} "${name}" is invalid: ${problems.join(", ")}`, {
        name,
        group: t.group,
        kind: t.kind,
        causes: problems.map((message) => ({ message })),
      });
    }
    return obj;
  }

  /** Registers another served type (tests; CRDs register theirs when they are stored). */
  addType(t: ResourceType): void {
    this.types.set(typeKeyOf(t), t);
  }

  /**
   * Serves what a stored CRD defines, and stops serving what a changed or deleted one no longer
   * does; deleting a CRD deletes its objects, as kube-apiserver's finalizer does.
   */
  private syncDefinition(crd: KubeObject, deleted: boolean): void {
    const name = crd.metadata.name ?? "";
    const before = [...this.types.values()].filter((t) => t.definedBy === name);
    for (const t of before) this.types.delete(typeKeyOf(t));
    const after = deleted ? [] : crdResourceTypes(crd);
    for (const t of after) {
      const existing = this.types.get(typeKeyOf(t));
      // A CRD never shadows a built-in type (kube-apiserver refuses such names as conflicting).
      if (existing === undefined || existing.definedBy !== undefined) this.types.set(typeKeyOf(t), t);
    }
    const gone = before[0];
    if (gone && after.length === 0) {
      const prefix = `${storageKeyOf(gone)}|`;
      for (const [k, o] of [...this.objects])
        if (k.startsWith(prefix)) this.commit(gone, "DELETED", structuredClone(o));
    }
  }

  /** Gives `obj` the next resourceVersion, stores (or removes) it, tells watchers; returns a copy. */
  private commit(t: ResourceType, type: WatchEventType, obj: KubeObject): KubeObject {
    this.rv++;
    obj.metadata.resourceVersion = String(this.rv);
    const k = this.key(t, obj.metadata.namespace, obj.metadata.name ?? "");
    if (type === "DELETED") this.objects.delete(k);
    else this.objects.set(k, obj);
    const event: StoredEvent = { rv: this.rv, typeKey: storageKeyOf(t), type, object: structuredClone(obj) };
    this.history.push(event);
    if (this.history.length > this.historyLimit) this.history.splice(0, this.history.length - this.historyLimit);
    for (const w of this.watchers) this.deliver(w, event);
    if (storageKeyOf(t) === storageKeyOf(CRD_TYPE)) this.syncDefinition(obj, type === "DELETED");
    return inVersion(t, obj);
  }

  private deliver(w: Watcher, e: StoredEvent): void {
    if (w.typeKey !== e.typeKey) return;
    if (w.namespace !== undefined && e.object.metadata.namespace !== w.namespace) return;
    const object = inVersion(w.type, e.object);
    // Asynchronous delivery: a listener may write to the store without re-entering commit().
    queueMicrotask(() => {
      if (this.watchers.has(w)) w.listener({ type: e.type, object });
    });
  }

  /** Returns a copy of the object, or undefined. */
  get(ref: TypeRef, namespace: string | undefined, name: string): KubeObject | undefined {
    const t = this.type(ref);
    const o = this.objects.get(this.key(t, namespace, name));
    return o ? inVersion(t, o) : undefined;
  }

  /** Like {@link get}, but throws 404 NotFound. */
  read(ref: TypeRef, namespace: string | undefined, name: string): KubeObject {
    const o = this.get(ref, namespace, name);
    if (!o) throw this.notFound(this.type(ref), name);
    return o;
  }

  /** Objects of a type (in one namespace, or all when `namespace` is undefined), sorted by name. */
  list(ref: TypeRef, namespace?: string, options: ListOptions = {}): KubeObject[] {
    const t = this.type(ref);
    const labels = parseLabelSelector(options.labelSelector);
    const fields = parseFieldSelector(options.fieldSelector);
    const prefix = `${storageKeyOf(t)}|`;
    const out: KubeObject[] = [];
    for (const [k, o] of this.objects) {
      if (!k.startsWith(prefix)) continue;
      if (t.namespaced && namespace !== undefined && o.metadata.namespace !== namespace) continue;
      if (!labels(o.metadata.labels) || !fields(o)) continue;
      out.push(inVersion(t, o));
    }
    return out.sort((a, b) =>
      `${a.metadata.namespace ?? ""}/${a.metadata.name ?? ""}`.localeCompare(
        `${b.metadata.namespace ?? ""}/${b.metadata.name ?? ""}`,
      ),
    );
  }

  /** Creates an object (namespace from `metadata.namespace`); 409 AlreadyExists when present. */
  create(ref: TypeRef, input: KubeObject, options: WriteOptions = {}): KubeObject {
    const t = this.type(ref);
    if (!isJsonObject(input as unknown) || !isJsonObject(input.metadata as unknown)) {
      throw new KubeApiError(400, "BadRequest", "the body must be an object with metadata");
    }
    let obj = structuredClone(input);
    let meta = obj.metadata;
    if (!meta.name && meta.generateName)
      meta.name = `${meta.generateName}${randomBytes(3).toString("hex").slice(0, 5)}`;
    if (!t.namespaced) delete meta.namespace;
    this.checkNamespace(t, meta.namespace);
    obj.apiVersion ??= apiVersionOf(t);
    obj.kind ??= t.kind;
    obj = this.admit(t, obj, options);
    meta = obj.metadata;
    const name = meta.name ?? "";
    if (this.objects.has(this.key(t, meta.namespace, name))) {
      throw new KubeApiError(409, "AlreadyExists", `${groupResource(t)} "${name}" already exists`, {
        name,
        group: t.group,
        kind: t.resource,
      });
    }
    for (const f of ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"] as const) delete meta[f];
    meta.uid = randomUUID();
    meta.creationTimestamp = rfc3339Seconds(this.now());
    if ("spec" in obj || t.subresources?.includes("status") || t.custom) meta.generation = 1;
    // Like kube-apiserver for types with a status subresource, create ignores a posted status.
    if (t.subresources?.includes("status") && t.resource !== "pods" && t.resource !== "nodes") delete obj.status;
    if (storageKeyOf(t) === storageKeyOf(CRD_TYPE)) obj.status = crdStatus(obj, undefined, rfc3339Seconds(this.now()));
    if (t.resource === "namespaces" && t.group === "") obj.status = { phase: "Active" };
    if (options.fieldManager) meta.managedFields = [this.managedEntry(t, options.fieldManager, "Update")];
    if (options.dryRun) return obj;
    return this.commit(t, "ADDED", obj);
  }

  private managedEntry(t: ResourceType, manager: string, operation: "Apply" | "Update", subresource?: string): Json {
    return {
      manager,
      operation,
      apiVersion: apiVersionOf(t),
      time: rfc3339Seconds(this.now()),
      fieldsType: "FieldsV1",
      fieldsV1: {},
      ...(subresource ? { subresource } : {}),
    };
  }

  /** `fields` with the manager's entry for `operation` replaced by a fresh one. */
  private withManagedEntry(
    fields: Json[] | undefined,
    t: ResourceType,
    manager: string,
    operation: "Apply" | "Update",
    subresource: string | undefined,
  ): Json[] {
    return [
      ...(fields ?? []).filter((e) => !(isJsonObject(e) && e.manager === manager && e.operation === operation)),
      this.managedEntry(t, manager, operation, subresource),
    ];
  }

  /**
   * Replaces an object. With `metadata.resourceVersion` set it must match (409 Conflict);
   * without it the update is unconditional. 404 when absent.
   */
  update(ref: TypeRef, input: KubeObject, options: WriteOptions = {}): KubeObject {
    const t = this.type(ref);
    if (!isJsonObject(input as unknown) || !isJsonObject(input.metadata as unknown)) {
      throw new KubeApiError(400, "BadRequest", "the body must be an object with metadata");
    }
    const name = input.metadata.name ?? "";
    const namespace = t.namespaced ? input.metadata.namespace : undefined;
    const current = this.objects.get(this.key(t, namespace, name));
    if (!current) throw this.notFound(t, name);
    if (input.metadata.uid !== undefined && input.metadata.uid !== "" && input.metadata.uid !== current.metadata.uid) {
      throw new KubeApiError(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${groupResource(t)} "${name}": Precondition failed: UID in precondition: ${input.metadata.uid}, UID in object meta: ${current.metadata.uid ?? ""}`,
        { name, group: t.group, kind: t.resource },
      );
    }
    const wanted = input.metadata.resourceVersion;
    if (wanted !== undefined && wanted !== "" && wanted !== current.metadata.resourceVersion) {
      throw new KubeApiError(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${groupResource(t)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        { name, group: t.group, kind: t.resource },
      );
    }
    let next: KubeObject;
    if (options.subresource === "status") {
      next = inVersion(t, current);
      if (input.status === undefined) delete next.status;
      else next.status = structuredClone(input.status);
      if (t.schema) next = this.admit(t, next, options);
    } else {
      next = structuredClone(input);
      next.apiVersion ??= apiVersionOf(t);
      next.kind ??= t.kind;
      if (t.namespaced) next.metadata.namespace = current.metadata.namespace;
      else delete next.metadata.namespace;
      // Server-owned metadata survives a replace.
      const meta: Record<string, Json | undefined> = next.metadata;
      for (const f of ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"]) {
        if (current.metadata[f] === undefined) delete meta[f];
        else meta[f] = current.metadata[f];
      }
      if (input.metadata.managedFields === undefined && current.metadata.managedFields) {
        next.metadata.managedFields = structuredClone(current.metadata.managedFields);
      }
      if (t.subresources?.includes("status") && t.resource !== "nodes") {
        if (current.status === undefined) delete next.status;
        else next.status = structuredClone(current.status);
      }
      next = this.admit(t, next, options);
      if (storageKeyOf(t) === storageKeyOf(CRD_TYPE)) {
        next.status = crdStatus(next, current.status as Json | undefined, rfc3339Seconds(this.now()));
      }
    }
    if (current.metadata.generation !== undefined) {
      next.metadata.generation = current.metadata.generation;
      if (!deepEqual(specPart(current), specPart(next))) next.metadata.generation++;
    }
    if (options.fieldManager) {
      next.metadata.managedFields = this.withManagedEntry(
        next.metadata.managedFields,
        t,
        options.fieldManager,
        "Update",
        options.subresource,
      );
    }
    next.metadata.resourceVersion = current.metadata.resourceVersion;
    return this.finishUpdate(t, current, next, options);
  }

  private finishUpdate(t: ResourceType, current: KubeObject, next: KubeObject, options: WriteOptions): KubeObject {
    const finalizersGone =
      next.metadata.deletionTimestamp !== undefined && (next.metadata.finalizers ?? []).length === 0;
    if (options.dryRun) return next;
    if (finalizersGone) {
      return this.commit(t, "DELETED", next);
    }
    if (deepEqual(comparable(current), comparable(next))) return inVersion(t, current);
    return this.commit(t, "MODIFIED", next);
  }

  /**
   * Patches an object. `apply` (server-side apply) creates the object when absent and needs a
   * `fieldManager`. A `metadata.resourceVersion` in the patched result must match (409).
   */
  patch(
    ref: TypeRef,
    namespace: string | undefined,
    name: string,
    type: PatchType,
    patch: unknown,
    options: WriteOptions = {},
  ): KubeObject {
    const t = this.type(ref);
    const stored = this.objects.get(this.key(t, namespace, name));
    const current = stored ? inVersion(t, stored) : undefined;
    if (type === "apply") {
      if (!options.fieldManager) {
        throw new KubeApiError(400, "BadRequest", "PatchOptions.meta.k8s.io is invalid: fieldManager: Required value");
      }
      if (!isJsonObject(patch) || !isJsonObject(patch.metadata)) {
        throw new KubeApiError(400, "BadRequest", "an apply configuration must be an object with metadata");
      }
      if (patch.metadata.name !== undefined && patch.metadata.name !== name) {
        throw new KubeApiError(
          400,
          "BadRequest",
          `the name of the object (${String(patch.metadata.name)}) does not match the name on the URL (${name})`,
        );
      }
      if (!current) {
        if (options.subresource) throw this.notFound(t, name);
        const body = structuredClone(patch) as unknown as KubeObject;
        body.metadata.name = name;
        if (t.namespaced) body.metadata.namespace = namespace;
        const created = this.create(ref, body, { dryRun: true });
        created.metadata.managedFields = [this.managedEntry(t, options.fieldManager, "Apply")];
        if (options.dryRun) return created;
        return this.commit(t, "ADDED", created);
      }
    }
    if (!current) throw this.notFound(t, name);
    let result: Json;
    try {
      switch (type) {
        case "json":
          result = applyJsonPatch(current as unknown as Json, patch);
          break;
        case "merge":
          result = applyMergePatch(current as unknown as Json, patch as Json);
          break;
        case "strategic":
        case "apply":
          result = applyStrategicMergePatch(current as unknown as Json, patch as Json);
          break;
      }
    } catch (e) {
      if (e instanceof PatchError) throw new KubeApiError(422, "Invalid", e.message);
      throw e;
    }
    if (!isJsonObject(result) || !isJsonObject(result.metadata)) {
      throw new KubeApiError(422, "Invalid", "the patched object has no metadata");
    }
    const next = result as unknown as KubeObject;
    if (next.metadata.name !== name) throw new KubeApiError(400, "BadRequest", "a patch cannot change metadata.name");
    if (next.metadata.resourceVersion === undefined) next.metadata.resourceVersion = current.metadata.resourceVersion;
    if (type === "apply" && options.fieldManager) {
      next.metadata.managedFields = this.withManagedEntry(
        current.metadata.managedFields,
        t,
        options.fieldManager,
        "Apply",
        options.subresource,
      );
      return this.update(ref, next, { dryRun: options.dryRun, subresource: options.subresource });
    }
    return this.update(ref, next, options);
  }

  /** Read-modify-write in-process (controllers): `mutate` edits a copy, which is then written. */
  mutate(
    ref: TypeRef,
    namespace: string | undefined,
    name: string,
    mutate: (obj: KubeObject) => void,
    options: WriteOptions = {},
  ): KubeObject {
    const obj = this.read(ref, namespace, name);
    mutate(obj);
    return this.update(ref, obj, options);
  }

  /**
   * Deletes an object (404 when absent). With finalizers it only gains `deletionTimestamp` and
   * goes away when an update removes the last finalizer. `preconditions` as in DeleteOptions.
   */
  delete(
    ref: TypeRef,
    namespace: string | undefined,
    name: string,
    options: WriteOptions & { preconditions?: { uid?: string; resourceVersion?: string } } = {},
  ): KubeObject {
    const t = this.type(ref);
    const current = this.objects.get(this.key(t, namespace, name));
    if (!current) throw this.notFound(t, name);
    const pre = options.preconditions;
    if (
      (pre?.uid && pre.uid !== current.metadata.uid) ||
      (pre?.resourceVersion && pre.resourceVersion !== current.metadata.resourceVersion)
    ) {
      throw new KubeApiError(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${groupResource(t)} "${name}": the precondition on the ${pre.uid && pre.uid !== current.metadata.uid ? "UID" : "ResourceVersion"} does not match`,
        { name, group: t.group, kind: t.resource },
      );
    }
    const next = structuredClone(current);
    if ((current.metadata.finalizers ?? []).length > 0) {
      if (current.metadata.deletionTimestamp !== undefined) return inVersion(t, current);
      next.metadata.deletionTimestamp = rfc3339Seconds(this.now());
      next.metadata.deletionGracePeriodSeconds = 0;
      if (options.dryRun) return next;
      return this.commit(t, "MODIFIED", next);
    }
    if (options.dryRun) return next;
    return this.commit(t, "DELETED", next);
  }

  /**
   * Watches a type (optionally one namespace). With `resourceVersion` the events after it are
   * replayed first; throws 410 Expired when that version is older than the kept history.
   * Without it, every current object arrives as ADDED. Returns the unsubscribe function.
   */
  watch(
    ref: TypeRef,
    namespace: string | undefined,
    listener: (event: WatchEvent) => void,
    options: { resourceVersion?: string } = {},
  ): () => void {
    const t = this.type(ref);
    const w: Watcher = { typeKey: storageKeyOf(t), type: t, namespace: t.namespaced ? namespace : undefined, listener };
    const from = options.resourceVersion;
    if (from === undefined || from === "" || from === "0") {
      for (const object of this.list(ref, namespace)) {
        queueMicrotask(() => {
          if (this.watchers.has(w)) listener({ type: "ADDED", object });
        });
      }
    } else {
      const n = Number(from);
      if (!Number.isInteger(n) || n < 0) throw new KubeApiError(400, "BadRequest", `invalid resourceVersion ${from}`);
      const oldest = this.history[0]?.rv ?? this.rv + 1;
      if (n < oldest - 1) {
        throw new KubeApiError(410, "Expired", `too old resource version: ${n} (${oldest - 1})`);
      }
      for (const e of this.history) if (e.rv > n) this.deliver(w, e);
    }
    this.watchers.add(w);
    return () => {
      this.watchers.delete(w);
    };
  }
}

/** One request the fake server received (for assertions on what the client sent). */
export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
  authorization: string | undefined;
  body: string;
}

export interface FakeKubeApiOptions extends FakeStoreOptions {
  /** Bearer token required on every request (default: a random one); `null` disables auth. */
  token?: string | null;
  /** BOOKMARK interval for watches with `allowWatchBookmarks=true` (default 5000 ms). */
  bookmarkIntervalMs?: number;
  /** How a watch from a too-old resourceVersion fails: kube-apiserver's in-stream ERROR event
   * with a 410 Status (default), or an HTTP 410 response. */
  watchExpiredAs?: "event" | "http";
  /** Requests kept in `requests` (default 2000, oldest dropped). */
  requestLimit?: number;
  /** Answers SelfSubjectAccessReviews (default: everything is allowed). */
  access?: (attributes: AccessAttributes) => boolean;
  /** Listen on this port for HTTP (default: a free one). */
  port?: number;
  /** Listen on this port for HTTPS, with `tls` (default: a free one). */
  httpsPort?: number;
  /**
   * Also serve HTTPS with this key and certificate (PEM) on a second port, for kubectl: client-go
   * sends a bearer token only over TLS (agent/sandbox/kubeconfig.ts makes a self-signed pair).
   */
  tls?: { key: string; cert: string };
}

export interface FakeKubeApi {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** The bearer token the server requires (undefined when auth is off). */
  token: string | undefined;
  /** `https://127.0.0.1:<port>` when started with `tls`. */
  httpsUrl: string | undefined;
  /** A KubeConfig for the real client (skipTLSVerify is required for http://). */
  kubeConfig(): KubeConfig;
  store: FakeStore;
  requests: RecordedRequest[];
  /** Every mutating request (POST, PUT, PATCH, DELETE on a resource), oldest first, with its
   * answer's status code: what a test reads to prove something wrote, or wrote nothing. */
  writes: WriteRecord[];
  close(): Promise<void>;
}

/** One mutating request, as the write log keeps it. */
export interface WriteRecord {
  verb: "create" | "update" | "patch" | "delete";
  group: string;
  version: string;
  resource: string;
  kind: string;
  namespace?: string;
  /** The object's name (from the body for a create; "" when it had none). */
  name: string;
  subresource?: string;
  /** `dryRun=All` (or a DeleteOptions body with it): nothing was stored. */
  dryRun: boolean;
  /** json, merge, strategic or apply (or the unsupported content type sent). */
  patchType?: string;
  fieldManager?: string;
  /** The HTTP status of the answer (0 until it is sent). */
  code: number;
}

/** What a SelfSubjectAccessReview asks about. */
export interface AccessAttributes {
  verb: string;
  group: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
}

const WRITE_VERBS: Record<string, WriteRecord["verb"]> = {
  POST: "create",
  PUT: "update",
  PATCH: "patch",
  DELETE: "delete",
};

/** `metadata.name` of a JSON body, or "" (a create's name is in its body). */
function nameInBody(body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    const name = isJsonObject(parsed) && isJsonObject(parsed.metadata) ? parsed.metadata.name : undefined;
    return typeof name === "string" ? name : "";
  } catch {
    return "";
  }
}

interface Route {
  type: ResourceType;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string | undefined;
}

const PATCH_TYPES: Record<string, PatchType> = {
  "application/json-patch+json": "json",
  "application/merge-patch+json": "merge",
  "application/strategic-merge-patch+json": "strategic",
  "application/apply-patch+yaml": "apply",
};

/** Whether the client asked for server-side printing (kubectl get: `Accept: application/json;as=Table;…`). */
function wantsTable(req: IncomingMessage): boolean {
  return /;\s*as=Table/.test(req.headers.accept ?? "");
}

/** kubectl's age format: 42s, 5m, 3h, 2d. */
function age(created: string | undefined, now: number): string {
  const ms = created ? now - Date.parse(created) : 0;
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** The value at a CRD scale path (`.spec.replicas`). */
function valueAtPath(o: KubeObject, path: string): Json | undefined {
  return field(o, ...path.split(".").filter(Boolean));
}

/** Sets the value at a CRD scale path, creating the objects on the way. */
function setAtPath(o: KubeObject, path: string, value: Json): void {
  const keys = path.split(".").filter(Boolean);
  let cur: JsonObject = o as unknown as JsonObject;
  for (const k of keys.slice(0, -1)) {
    const next = cur[k];
    if (isJsonObject(next)) cur = next;
    else {
      const created: JsonObject = {};
      cur[k] = created;
      cur = created;
    }
  }
  const last = keys[keys.length - 1];
  if (last !== undefined) cur[last] = value;
}

function field(o: unknown, ...path: string[]): Json | undefined {
  let cur: Json | undefined = o as Json;
  for (const p of path) cur = isJsonObject(cur) ? cur[p] : undefined;
  return cur;
}

function readyOf(o: KubeObject): string | undefined {
  const conditions = field(o, "status", "conditions");
  const c = Array.isArray(conditions) ? conditions.find((x) => isJsonObject(x) && x.type === "Ready") : undefined;
  return isJsonObject(c) && typeof c.status === "string" ? c.status : undefined;
}

/**
 * A meta.k8s.io/v1 Table, as kube-apiserver prints for kubectl get (the columns of its printers in
 * pkg/printers/internalversion for nodes, pods and workloads; NAME and AGE for everything else).
 */
function asTable(t: ResourceType, items: KubeObject[], resourceVersion: string, now: number): JsonObject {
  type Column = { name: string; type: string; format?: string; priority?: number; cell: (o: KubeObject) => Json };
  const name: Column = { name: "Name", type: "string", format: "name", cell: (o) => o.metadata.name ?? "" };
  const ageCol: Column = { name: "Age", type: "string", cell: (o) => age(o.metadata.creationTimestamp, now) };
  let columns: Column[] = [name, ageCol];
  if (t.resource === "nodes") {
    columns = [
      name,
      {
        name: "Status",
        type: "string",
        cell: (o) => {
          const r = readyOf(o);
          const base = r === "True" ? "Ready" : r === "False" ? "NotReady" : "Unknown";
          return field(o, "spec", "unschedulable") === true ? `${base},SchedulingDisabled` : base;
        },
      },
      { name: "Roles", type: "string", cell: () => "<none>" },
      ageCol,
      {
        name: "Version",
        type: "string",
        cell: (o) => {
          const v = field(o, "status", "nodeInfo", "kubeletVersion");
          return typeof v === "string" ? v : "v1.31.0-sandbox";
        },
      },
    ];
  } else if (t.resource === "pods") {
    columns = [
      name,
      { name: "Ready", type: "string", cell: (o) => (readyOf(o) === "True" ? "1/1" : "0/1") },
      {
        name: "Status",
        type: "string",
        cell: (o) => {
          if (o.metadata.deletionTimestamp !== undefined) return "Terminating";
          const phase = field(o, "status", "phase");
          return typeof phase === "string" ? phase : "Unknown";
        },
      },
      { name: "Restarts", type: "integer", cell: () => 0 },
      ageCol,
      {
        name: "Node",
        type: "string",
        priority: 1,
        cell: (o) => {
          const n = field(o, "spec", "nodeName");
          return typeof n === "string" ? n : "<none>";
        },
      },
    ];
  } else if (t.resource === "events" && t.group === "") {
    const text = (o: KubeObject, ...path: string[]) => {
      const v = field(o, ...path);
      return typeof v === "string" ? v : "";
    };
    columns = [
      {
        name: "Last Seen",
        type: "string",
        cell: (o) => age(text(o, "lastTimestamp") || o.metadata.creationTimestamp, now),
      },
      { name: "Type", type: "string", cell: (o) => text(o, "type") },
      { name: "Reason", type: "string", cell: (o) => text(o, "reason") },
      {
        name: "Object",
        type: "string",
        cell: (o) => `${text(o, "involvedObject", "kind").toLowerCase()}/${text(o, "involvedObject", "name")}`,
      },
      { name: "Message", type: "string", cell: (o) => text(o, "message") },
    ];
  } else if (t.resource === "deployments" || t.resource === "statefulsets") {
    columns = [
      name,
      {
        name: "Ready",
        type: "string",
        cell: (o) => {
          const ready = field(o, "status", "readyReplicas");
          const want = field(o, "spec", "replicas");
          return `${typeof ready === "number" ? ready : 0}/${typeof want === "number" ? want : 1}`;
        },
      },
      ageCol,
    ];
  }
  return {
    kind: "Table",
    apiVersion: "meta.k8s.io/v1",
    metadata: { resourceVersion },
    columnDefinitions: columns.map((c) => ({
      name: c.name,
      type: c.type,
      format: c.format ?? "",
      description: "",
      priority: c.priority ?? 0,
    })),
    rows: items.map((o) => ({
      cells: columns.map((c) => c.cell(o)),
      object: { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: o.metadata as JsonObject },
    })),
  };
}

/** Starts the fake API server on 127.0.0.1 with a random free port. */
export async function startFakeKubeApi(options: FakeKubeApiOptions = {}): Promise<FakeKubeApi> {
  const store = new FakeStore(options);
  const token = options.token === null ? undefined : (options.token ?? randomBytes(16).toString("hex"));
  const bookmarkMs = options.bookmarkIntervalMs ?? 5000;
  const requestLimit = options.requestLimit ?? 2000;
  const requests: RecordedRequest[] = [];
  const writes: WriteRecord[] = [];
  const open = new Set<ServerResponse>();
  const cleanups = new Set<() => void>();

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      try {
        handle(req, res, body);
      } catch (e) {
        const err =
          e instanceof KubeApiError
            ? e
            : e instanceof SelectorError
              ? new KubeApiError(400, "BadRequest", e.message)
              : new KubeApiError(500, "InternalError", e instanceof Error ? e.message : String(e));
        if (!res.headersSent) sendJson(res, err.code, err.status());
        else res.end();
      }
    });
  };
  const server = createServer(listener);
  const secure: Server | undefined = options.tls ? createTlsServer(options.tls, listener) : undefined;
  /**
   * A namespaced object in a create or replace takes the request's namespace; one that names
   * another is refused, as the API server does.
   */
  function placeInNamespace(obj: KubeObject, namespace: string | undefined): void {
    if (obj.metadata.namespace !== undefined && obj.metadata.namespace !== namespace) {
      throw new KubeApiError(
        400,
        "BadRequest",
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    }
    obj.metadata.namespace = namespace ?? "";
  }

  function sendJson(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  }

  function route(segments: string[]): Route | undefined {
    let group: string;
    let version: string;
    let rest: string[];
    if (segments[0] === "api" && segments.length >= 3) {
      group = "";
      version = segments[1] ?? "";
      rest = segments.slice(2);
    } else if (segments[0] === "apis" && segments.length >= 4) {
      group = segments[1] ?? "";
      version = segments[2] ?? "";
      rest = segments.slice(3);
    } else return undefined;
    let namespace: string | undefined;
    // `/namespaces/{ns}/{resource}…` unless it is the core namespace object's own subresource.
    if (
      rest[0] === "namespaces" &&
      rest.length >= 3 &&
      (group !== "" || !["status", "finalize"].includes(rest[2] ?? ""))
    ) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const type = store.findType({ group, version, resource: rest[0] ?? "" });
    if (!type || rest.length > 3) return undefined;
    if (!type.namespaced && namespace !== undefined) return undefined;
    const subresource = rest[2];
    if (subresource !== undefined && !(type.subresources ?? []).includes(subresource as "status")) return undefined;
    return { type, namespace, name: rest[1], subresource };
  }

  function handle(req: IncomingMessage, res: ServerResponse, body: string): void {
    const url = new URL(req.url ?? "/", "http://fake");
    const query = Object.fromEntries(url.searchParams);
    const contentType = req.headers["content-type"]?.split(";")[0]?.trim();
    requests.push({
      method: req.method ?? "GET",
      path: url.pathname,
      query,
      contentType,
      authorization: req.headers.authorization,
      body,
    });
    if (requests.length > requestLimit) requests.splice(0, requests.length - requestLimit);
    if (token !== undefined && req.headers.authorization !== `Bearer ${token}`) {
      throw new KubeApiError(401, "Unauthorized", "Unauthorized");
    }
    const segments = url.pathname.split("/").filter((s) => s !== "");
    if (url.pathname === "/version") {
      sendJson(res, 200, { major: "1", minor: "31", gitVersion: "v1.31.0-turnout-fake", platform: "linux/amd64" });
      return;
    }
    if (url.pathname === "/healthz" || url.pathname === "/readyz" || url.pathname === "/livez") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
      return;
    }
    if (req.method === "GET" && segments[0] === "openapi" && segments[1] === "v3") {
      const types = store.resourceTypes();
      const rest = segments.slice(2);
      const doc =
        rest.length === 0
          ? openApiIndex(types)
          : rest[0] === "api" && rest.length === 2
            ? openApiDocument(types, "", rest[1] ?? "")
            : rest[0] === "apis" && rest.length === 3
              ? openApiDocument(types, rest[1] ?? "", rest[2] ?? "")
              : undefined;
      if (!doc) throw new KubeApiError(404, "NotFound", "the server could not find the requested resource");
      sendJson(res, 200, doc);
      return;
    }
    if (req.method === "GET" && discovery(req, res, segments)) return;
    if (req.method === "POST" && url.pathname === ACCESS_REVIEW_PATH) {
      // An `access` option decides in tests that want a fixed answer; otherwise the review is
      // answered from the Roles, ClusterRoles and bindings stored here, as the real API does.
      if (options.access) {
        selfSubjectAccessReview(res, body);
        return;
      }
      const review = answerAccessReview(store, parseBody(body));
      if (!review) throw new KubeApiError(400, "BadRequest", "the body is not a SelfSubjectAccessReview");
      sendJson(res, 201, review);
      return;
    }
    const r = route(segments);
    if (!r) throw new KubeApiError(404, "NotFound", "the server could not find the requested resource");
    const dryRun = query.dryRun;
    if (dryRun !== undefined && dryRun !== "All") {
      throw new KubeApiError(400, "BadRequest", `dryRun: Unsupported value: "${dryRun}": supported values: "All"`);
    }
    const fieldValidation = query.fieldValidation;
    if (fieldValidation !== undefined && !["Strict", "Warn", "Ignore"].includes(fieldValidation)) {
      throw new KubeApiError(
        400,
        "BadRequest",
        `fieldValidation: Unsupported value: "${fieldValidation}": supported values: "Ignore", "Strict", "Warn"`,
      );
    }
    const writeOptions: WriteOptions = {
      dryRun: dryRun === "All",
      fieldManager: query.fieldManager,
      subresource: r.subresource === "status" ? "status" : undefined,
      fieldValidation: fieldValidation as WriteOptions["fieldValidation"],
    };
    const ref = r.type;
    const namespace = r.type.namespaced ? r.namespace : undefined;
    const method = req.method ?? "GET";
    const verb = WRITE_VERBS[method];
    if (verb) {
      const record: WriteRecord = {
        verb,
        group: r.type.group,
        version: r.type.version,
        resource: r.type.resource,
        kind: r.type.kind,
        ...(namespace !== undefined ? { namespace } : {}),
        name: r.name ?? nameInBody(body),
        ...(r.subresource !== undefined ? { subresource: r.subresource } : {}),
        dryRun: writeOptions.dryRun === true || (verb === "delete" && /"dryRun"\s*:\s*\[\s*"All"/.test(body)),
        ...(verb === "patch" && contentType ? { patchType: PATCH_TYPES[contentType] ?? contentType } : {}),
        ...(query.fieldManager ? { fieldManager: query.fieldManager } : {}),
        code: 0,
      };
      writes.push(record);
      if (writes.length > requestLimit) writes.splice(0, writes.length - requestLimit);
      res.on("finish", () => {
        record.code = res.statusCode;
      });
    }

    if (method === "GET" && r.name === undefined) {
      if (query.watch === "true" || query.watch === "1") {
        watch(res, r, query);
        return;
      }
      const items = store.list(ref, namespace, {
        labelSelector: query.labelSelector,
        fieldSelector: query.fieldSelector,
      });
      if (wantsTable(req)) {
        sendJson(res, 200, asTable(r.type, items, store.resourceVersion, Date.now()));
        return;
      }
      sendJson(res, 200, {
        kind: `${r.type.kind}List`,
        apiVersion: apiVersionOf(r.type),
        metadata: { resourceVersion: store.resourceVersion },
        items,
      });
      return;
    }
    if (method === "POST" && r.name === undefined) {
      const obj = parseBody(body) as unknown as KubeObject;
      if (isJsonObject(obj) && isJsonObject(obj.metadata) && r.type.namespaced) placeInNamespace(obj, namespace);
      sendJson(res, 201, store.create(ref, obj, writeOptions));
      return;
    }
    if (r.name === undefined)
      throw new KubeApiError(405, "MethodNotAllowed", `${method} is not supported on collections`);
    const name = r.name;
    if (r.subresource === "scale") {
      scale(res, method, ref, namespace, name, body, writeOptions);
      return;
    }
    switch (method) {
      case "GET": {
        const o = store.read(ref, namespace, name);
        sendJson(res, 200, wantsTable(req) ? asTable(r.type, [o], store.resourceVersion, Date.now()) : o);
        return;
      }
      case "PUT": {
        const obj = parseBody(body) as unknown as KubeObject;
        if (!isJsonObject(obj) || !isJsonObject(obj.metadata)) {
          throw new KubeApiError(400, "BadRequest", "the body must be an object with metadata");
        }
        if (obj.metadata.name !== name) {
          throw new KubeApiError(
            400,
            "BadRequest",
            `the name of the object (${String(obj.metadata.name)}) does not match the name on the URL (${name})`,
          );
        }
        if (r.type.namespaced) placeInNamespace(obj, namespace);
        sendJson(res, 200, store.update(ref, obj, writeOptions));
        return;
      }
      case "PATCH": {
        const type = PATCH_TYPES[contentType ?? ""];
        if (!type) {
          throw new KubeApiError(
            415,
            "UnsupportedMediaType",
            `the body of the request was in an unknown format - accepted media types include: ${Object.keys(PATCH_TYPES).join(", ")}`,
          );
        }
        const patch = type === "apply" ? parseYamlBody(body) : parseBody(body);
        const existed = store.get(ref, namespace, name) !== undefined;
        const out = store.patch(ref, namespace, name, type, patch, writeOptions);
        sendJson(res, existed ? 200 : 201, out);
        return;
      }
      case "DELETE": {
        const opts = body.trim() === "" ? {} : parseBody(body);
        const pre = isJsonObject(opts) && isJsonObject(opts.preconditions) ? opts.preconditions : undefined;
        const bodyDryRun = isJsonObject(opts) && Array.isArray(opts.dryRun) && opts.dryRun.includes("All");
        sendJson(
          res,
          200,
          store.delete(ref, namespace, name, {
            ...writeOptions,
            dryRun: writeOptions.dryRun || bodyDryRun,
            preconditions: pre
              ? {
                  uid: typeof pre.uid === "string" ? pre.uid : undefined,
                  resourceVersion: typeof pre.resourceVersion === "string" ? pre.resourceVersion : undefined,
                }
              : undefined,
          }),
        );
        return;
      }
      default:
        throw new KubeApiError(405, "MethodNotAllowed", `${method} is not supported`);
    }
  }

  function scale(
    res: ServerResponse,
    method: string,
    ref: ResourceType,
    namespace: string | undefined,
    name: string,
    body: string,
    writeOptions: WriteOptions,
  ): void {
    // A custom resource's replicas live where its CRD's `subresources.scale` says.
    const paths = ref.scale ?? { specReplicasPath: ".spec.replicas", statusReplicasPath: ".status.replicas" };
    const toScale = (o: KubeObject): JsonObject => {
      const spec = isJsonObject(o.spec) ? o.spec : {};
      const selector =
        isJsonObject(spec.selector) && isJsonObject(spec.selector.matchLabels) ? spec.selector.matchLabels : {};
      const specReplicas = valueAtPath(o, paths.specReplicasPath);
      const statusReplicas = valueAtPath(o, paths.statusReplicasPath);
      const labelSelector = paths.labelSelectorPath ? valueAtPath(o, paths.labelSelectorPath) : undefined;
      return {
        kind: "Scale",
        apiVersion: "autoscaling/v1",
        metadata: {
          name,
          namespace: namespace ?? null,
          uid: o.metadata.uid ?? null,
          resourceVersion: o.metadata.resourceVersion ?? null,
          creationTimestamp: o.metadata.creationTimestamp ?? null,
        },
        spec: { replicas: typeof specReplicas === "number" ? specReplicas : ref.custom ? 0 : 1 },
        status: {
          replicas: typeof statusReplicas === "number" ? statusReplicas : 0,
          selector:
            typeof labelSelector === "string"
              ? labelSelector
              : Object.entries(selector)
                  .map(([k, v]) => `${k}=${String(v)}`)
                  .join(","),
        },
      };
    };
    const current = store.read(ref, namespace, name);
    if (method === "GET") {
      sendJson(res, 200, toScale(current));
      return;
    }
    let replicas: Json | undefined;
    let rv: Json | undefined;
    if (method === "PUT") {
      const s = parseBody(body);
      replicas = isJsonObject(s) && isJsonObject(s.spec) ? s.spec.replicas : undefined;
      rv = isJsonObject(s) && isJsonObject(s.metadata) ? s.metadata.resourceVersion : undefined;
    } else if (method === "PATCH") {
      const patched = applyMergePatchOrJson(toScale(current), body);
      replicas = isJsonObject(patched.spec) ? patched.spec.replicas : undefined;
    } else throw new KubeApiError(405, "MethodNotAllowed", `${method} is not supported on scale`);
    if (typeof replicas !== "number" || !Number.isInteger(replicas) || replicas < 0) {
      throw new KubeApiError(
        422,
        "Invalid",
        `Scale.autoscaling "${name}" is invalid: spec.replicas: must be a non-negative integer`,
      );
    }
    const next = structuredClone(current);
    setAtPath(next, paths.specReplicasPath, replicas);
    if (typeof rv === "string" && rv !== "") next.metadata.resourceVersion = rv;
    else delete next.metadata.resourceVersion;
    sendJson(
      res,
      200,
      toScale(store.update(ref, next, { dryRun: writeOptions.dryRun, fieldManager: writeOptions.fieldManager })),
    );
  }

  function applyMergePatchOrJson(target: JsonObject, body: string): JsonObject {
    const patch = parseBody(body);
    let out: Json;
    try {
      out = Array.isArray(patch) ? applyJsonPatch(target, patch) : applyMergePatch(target, patch);
    } catch (e) {
      if (e instanceof PatchError) throw new KubeApiError(422, "Invalid", e.message);
      throw e;
    }
    if (!isJsonObject(out)) throw new KubeApiError(422, "Invalid", "the patched scale is not an object");
    return out;
  }

  /** Answers a SelfSubjectAccessReview (`kubectl auth can-i`, readiness checks); it writes nothing. */
  function selfSubjectAccessReview(res: ServerResponse, body: string): void {
    const review = parseBody(body);
    const spec = isJsonObject(review) && isJsonObject(review.spec) ? review.spec : undefined;
    const attributes = spec && isJsonObject(spec.resourceAttributes) ? spec.resourceAttributes : undefined;
    if (!attributes) {
      throw new KubeApiError(
        422,
        "Invalid",
        "SelfSubjectAccessReview is invalid: spec.resourceAttributes: Required value",
      );
    }
    const text = (v: Json | undefined) => (typeof v === "string" ? v : "");
    const decision = (options.access ?? (() => true))({
      verb: text(attributes.verb),
      group: text(attributes.group),
      resource: text(attributes.resource),
      subresource: text(attributes.subresource),
      namespace: text(attributes.namespace),
      name: text(attributes.name),
    });
    sendJson(res, 201, {
      kind: "SelfSubjectAccessReview",
      apiVersion: "authorization.k8s.io/v1",
      metadata: { creationTimestamp: null },
      spec,
      status: { allowed: decision, ...(decision ? { reason: "the sandbox allows everything it is asked" } : {}) },
    });
  }

  function discovery(req: IncomingMessage, res: ServerResponse, segments: string[]): boolean {
    const types = store.resourceTypes();
    const [root, group = "", version = ""] = segments;
    if ((root === "api" || root === "apis") && segments.length === 1) {
      const aggregated = aggregatedDiscoveryType(req.headers.accept);
      if (aggregated) {
        const text = JSON.stringify(aggregatedDiscovery(types, root === "api", aggregated));
        res.writeHead(200, { "content-type": aggregated, "content-length": Buffer.byteLength(text) });
        res.end(text);
      } else sendJson(res, 200, root === "api" ? { kind: "APIVersions", versions: ["v1"] } : apiGroupList(types));
      return true;
    }
    const doc =
      root === "api" && segments.length === 2
        ? resourceList(types, "", group)
        : root === "apis" && segments.length === 2
          ? apiGroupOf(types, group)
          : root === "apis" && segments.length === 3
            ? resourceList(types, group, version)
            : undefined;
    if (!doc) return false;
    sendJson(res, 200, doc);
    return true;
  }

  function watch(res: ServerResponse, r: Route, query: Record<string, string>): void {
    const labels = parseLabelSelector(query.labelSelector);
    const fields = parseFieldSelector(query.fieldSelector);
    const namespace = r.type.namespaced ? r.namespace : undefined;
    const write = (event: JsonObject) => {
      if (!res.writableEnded) res.write(`${JSON.stringify(event)}\n`);
    };
    let unsubscribe: () => void;
    try {
      unsubscribe = store.watch(
        r.type,
        namespace,
        (e) => {
          if (labels(e.object.metadata.labels) && fields(e.object))
            write({ type: e.type, object: e.object as unknown as JsonObject });
        },
        { resourceVersion: query.resourceVersion },
      );
    } catch (e) {
      if (e instanceof KubeApiError && e.code === 410 && options.watchExpiredAs !== "http") {
        // kube-apiserver answers 200 and sends the expiry as an ERROR event (watch cache).
        res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
        res.end(`${JSON.stringify({ type: "ERROR", object: e.status() })}\n`);
        return;
      }
      throw e;
    }
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    res.flushHeaders();
    open.add(res);
    const timers: NodeJS.Timeout[] = [];
    if (query.allowWatchBookmarks === "true") {
      timers.push(
        setInterval(() => {
          write({
            type: "BOOKMARK",
            object: {
              kind: r.type.kind,
              apiVersion: apiVersionOf(r.type),
              metadata: { resourceVersion: store.resourceVersion },
            },
          });
        }, bookmarkMs),
      );
    }
    const timeoutSeconds = Number(query.timeoutSeconds);
    if (Number.isFinite(timeoutSeconds) && timeoutSeconds > 0) {
      timers.push(setTimeout(() => res.end(), timeoutSeconds * 1000));
    }
    const cleanup = () => {
      unsubscribe();
      for (const t of timers) clearTimeout(t);
      open.delete(res);
      cleanups.delete(cleanup);
    };
    cleanups.add(cleanup);
    // Not req "close": Node emits it as soon as the (empty) request body has been read.
    res.on("close", cleanup);
  }

  function parseBody(body: string): Json {
    try {
      return JSON.parse(body) as Json;
    } catch {
      throw new KubeApiError(400, "BadRequest", "the request body is not valid JSON");
    }
  }

  function parseYamlBody(body: string): Json {
    try {
      return parseYaml(body) as Json;
    } catch {
      throw new KubeApiError(400, "BadRequest", "the apply configuration is not valid YAML or JSON");
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  let httpsUrl: string | undefined;
  if (secure) {
    await new Promise<void>((resolve, reject) => {
      secure.once("error", reject);
      secure.listen(options.httpsPort ?? 0, "127.0.0.1", () => resolve());
    });
    httpsUrl = `https://127.0.0.1:${(secure.address() as AddressInfo).port}`;
  }

  return {
    url,
    token,
    httpsUrl,
    store,
    requests,
    writes,
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: "fake", server: url, skipTLSVerify: true }],
        users: [{ name: "agent", token: token ?? "" }],
        contexts: [{ name: "fake", cluster: "fake", user: "agent" }],
        currentContext: "fake",
      });
      return kc;
    },
    async close() {
      for (const c of [...cleanups]) c();
      for (const res of open) res.end();
      for (const srv of secure ? [server, secure] : [server]) {
        srv.closeAllConnections();
        await new Promise<void>((resolve) => srv.close(() => resolve()));
      }
    },
  };
}
