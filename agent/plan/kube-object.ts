/**
 * Any Kubernetes object by apiVersion, kind, namespace and name (built-in kinds and CRDs alike),
 * through client-node's KubernetesObjectApi, which finds the resource by discovery.
 */
import {
  ApiException,
  HttpMethod,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
  type ResponseContext,
} from "@kubernetes/client-node";
import { StepError } from "../executor.ts";
import { apiErrorText, isApiStatus, unlessNotFound } from "../kube-api.ts";

/** The agent's field manager for writes it makes (server-side apply needs one). */
export const PLAN_FIELD_MANAGER = "turnout-agent";

/** What names one object. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string | undefined;
  name: string;
}

/** A plain JSON object as the API returns it. */
export type PlainObject = Record<string, unknown> & {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; generation?: number };
};

export type PatchType = "merge" | "json" | "apply";

const STRATEGY: Record<PatchType, PatchStrategy> = {
  merge: PatchStrategy.MergePatch,
  json: PatchStrategy.JsonPatch,
  apply: PatchStrategy.ServerSideApply,
};

/** `HTTPRoute web/shop` */
export function refText(ref: ObjectRef): string {
  return `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ""}${ref.name}`;
}

function header(ref: ObjectRef) {
  return {
    apiVersion: ref.apiVersion,
    kind: ref.kind,
    metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) },
  };
}

/**
 * client-node's generic object client, answering plain JSON: its own answers go through the typed
 * models, which drop the fields a CRD adds and turn timestamps into Dates; and its `patch` sends
 * the spec as the body, so a JSON Patch (a list) could not be sent at all.
 */
class PlainObjectApi extends KubernetesObjectApi {
  protected override async processResponse<T extends KubernetesObject>(response: ResponseContext): Promise<T> {
    const text = await response.body.text();
    if (response.httpStatusCode >= 200 && response.httpStatusCode <= 299) return JSON.parse(text) as T;
    throw new ApiException(response.httpStatusCode, "Unsuccessful HTTP Request", text, response.headers);
  }

  /** The kubeconfig context's namespace for objects that name none (as makeApiClient does). */
  useNamespaceOf(kubeConfig: KubeConfig): void {
    this.setDefaultNamespace(kubeConfig);
  }

  /** PATCH with `body` sent exactly as given. */
  async patchRaw(
    ref: ObjectRef,
    body: string,
    contentType: string,
    query: Record<string, string>,
  ): Promise<KubernetesObject> {
    const path = await this.specUriPath(header(ref), "patch");
    const request = this.configuration.baseServer.makeRequestContext(path, HttpMethod.PATCH);
    request.setHeaderParam("Accept", "application/json");
    request.setHeaderParam("Content-Type", contentType);
    for (const [k, v] of Object.entries(query)) request.setQueryParam(k, v);
    request.setBody(body);
    return this.requestPromise(request);
  }
}

/** Reads and patches objects of any kind on one cluster. */
export class KubeObjects {
  private readonly api: PlainObjectApi;
  constructor(kubeConfig: KubeConfig) {
    this.api = kubeConfig.makeApiClient(PlainObjectApi);
    this.api.useNamespaceOf(kubeConfig);
  }

  /** The object, or undefined when it does not exist. */
  async read(ref: ObjectRef): Promise<PlainObject | undefined> {
    try {
      return (await unlessNotFound(this.api.read(header(ref)))) as PlainObject | undefined;
    } catch (err) {
      throw new StepError("kubernetes", `read ${refText(ref)}: ${apiErrorText(err)}`);
    }
  }

  /**
   * Patches the object. A 409 (the resourceVersion carried in the patch is stale) or a failed
   * JSON Patch `test` (422) is the compare-and-swap losing: someone wrote between read and write.
   */
  async patch(
    ref: ObjectRef,
    patch: unknown,
    patchType: PatchType,
    dryRun: boolean,
  ): Promise<{ ok: true; object: PlainObject } | { ok: false; conflict: string }> {
    const body = patchType === "apply" ? { ...header(ref), ...(patch as object) } : patch;
    const query: Record<string, string> = { fieldManager: PLAN_FIELD_MANAGER };
    if (dryRun) query.dryRun = "All";
    if (patchType === "apply") query.force = "true";
    try {
      const out = await this.api.patchRaw(ref, JSON.stringify(body), STRATEGY[patchType], query);
      return { ok: true, object: out as PlainObject };
    } catch (err) {
      if (isApiStatus(err, 409)) return { ok: false, conflict: apiErrorText(err) };
      if (patchType === "json" && isApiStatus(err, 422)) return { ok: false, conflict: apiErrorText(err) };
      throw new StepError("kubernetes", `patch ${refText(ref)}: ${apiErrorText(err)}`);
    }
  }
}
