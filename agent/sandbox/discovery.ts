/**
 * The fake API's discovery documents, for the types it serves at the moment of the request (a
 * CRD's kinds appear once it is stored and go when it is deleted):
 * - legacy discovery: `/api` (APIVersions), `/apis` (APIGroupList), `/apis/<group>` (APIGroup),
 *   `/api/v1` and `/apis/<group>/<version>` (APIResourceList);
 * - aggregated discovery (KEP-3352), which kubectl asks for first on `/api` and `/apis` with
 *   `Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`: one
 *   APIGroupDiscoveryList answering for every group-version at once.
 * Versions are listed in Kubernetes priority order, the preferred one first.
 */
import type { ResourceType } from "./fake-kube-api.ts";
import type { JsonObject } from "./kube-patch.ts";

/** Kubernetes version priority (GA, then beta, then alpha; higher numbers first): a negative
 * number when `a` is preferred over `b`. */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return [0, 0, 0];
    return [m[2] === undefined ? 3 : m[2] === "beta" ? 2 : 1, Number(m[1]), Number(m[3] ?? 0)];
  };
  const [pa, pb] = [parse(a), parse(b)];
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pb[i] ?? 0) - (pa[i] ?? 0);
  return a.localeCompare(b);
}

const VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const SUBRESOURCE_VERBS = ["get", "patch", "update"];

/** The content type of an aggregated discovery answer, when `accept` asks for one (v2 or v2beta1). */
export function aggregatedDiscoveryType(accept: string | undefined): string | undefined {
  for (const part of (accept ?? "").split(",")) {
    const params = Object.fromEntries(
      part
        .split(";")
        .slice(1)
        .map((p) => p.trim().split("=") as [string, string]),
    );
    if (
      params.g === "apidiscovery.k8s.io" &&
      params.as === "APIGroupDiscoveryList" &&
      /^v2(beta1)?$/.test(params.v ?? "")
    ) {
      return `application/json;g=apidiscovery.k8s.io;v=${params.v};as=APIGroupDiscoveryList`;
    }
  }
  return undefined;
}

function groupsOf(types: readonly ResourceType[], core: boolean): Map<string, string[]> {
  const groups = new Map<string, Set<string>>();
  for (const t of types) {
    if ((t.group === "") !== core) continue;
    groups.set(t.group, (groups.get(t.group) ?? new Set()).add(t.version));
  }
  return new Map([...groups].map(([g, vs]) => [g, [...vs].sort(compareVersions)]));
}

function groupVersion(group: string, version: string): string {
  return group === "" ? version : `${group}/${version}`;
}

/** APIResourceList of one group-version, or undefined when it serves nothing. */
export function resourceList(types: readonly ResourceType[], group: string, version: string): JsonObject | undefined {
  const served = types.filter((t) => t.group === group && t.version === version);
  if (served.length === 0) return undefined;
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: groupVersion(group, version),
    resources: served.flatMap((t) => [
      {
        name: t.resource,
        singularName: t.singular ?? t.kind.toLowerCase(),
        namespaced: t.namespaced,
        kind: t.kind,
        verbs: VERBS,
        ...(t.shortNames?.length ? { shortNames: t.shortNames } : {}),
        ...(t.categories?.length ? { categories: t.categories } : {}),
      },
      ...(t.subresources ?? []).map((s) => ({
        name: `${t.resource}/${s}`,
        singularName: "",
        namespaced: t.namespaced,
        ...(s === "scale" ? { group: "autoscaling", version: "v1" } : {}),
        kind: s === "scale" ? "Scale" : t.kind,
        verbs: SUBRESOURCE_VERBS,
      })),
    ]),
  };
}

function apiGroup(name: string, versions: string[]): JsonObject {
  const vs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions: vs, ...(vs[0] ? { preferredVersion: vs[0] } : {}) };
}

/** `/apis`: every non-core group. */
export function apiGroupList(types: readonly ResourceType[]): JsonObject {
  return {
    kind: "APIGroupList",
    apiVersion: "v1",
    groups: [...groupsOf(types, false)].map(([name, versions]) => apiGroup(name, versions)),
  };
}

/** `/apis/<group>`, or undefined when the group serves nothing. */
export function apiGroupOf(types: readonly ResourceType[], group: string): JsonObject | undefined {
  const versions = groupsOf(types, false).get(group);
  return versions ? { kind: "APIGroup", apiVersion: "v1", ...apiGroup(group, versions) } : undefined;
}

/** The aggregated discovery document of the core group (`/api`) or of every other group (`/apis`). */
export function aggregatedDiscovery(types: readonly ResourceType[], core: boolean, contentType: string): JsonObject {
  const version = /;v=(v2(?:beta1)?);/.exec(contentType)?.[1] ?? "v2";
  const resource = (t: ResourceType): JsonObject => ({
    resource: t.resource,
    responseKind: { group: t.group, version: t.version, kind: t.kind },
    scope: t.namespaced ? "Namespaced" : "Cluster",
    singularResource: t.singular ?? t.kind.toLowerCase(),
    verbs: VERBS,
    ...(t.shortNames?.length ? { shortNames: t.shortNames } : {}),
    ...(t.categories?.length ? { categories: t.categories } : {}),
    ...(t.subresources?.length
      ? {
          subresources: t.subresources.map((s) => ({
            subresource: s,
            responseKind:
              s === "scale"
                ? { group: "autoscaling", version: "v1", kind: "Scale" }
                : { group: t.group, version: t.version, kind: t.kind },
            verbs: SUBRESOURCE_VERBS,
          })),
        }
      : {}),
  });
  return {
    kind: "APIGroupDiscoveryList",
    apiVersion: `apidiscovery.k8s.io/${version}`,
    metadata: {},
    items: [...groupsOf(types, core)].map(([group, versions]) => ({
      metadata: { name: group, creationTimestamp: null },
      versions: versions.map((v) => ({
        version: v,
        resources: types.filter((t) => t.group === group && t.version === v).map(resource),
        freshness: "Current",
      })),
    })),
  };
}
