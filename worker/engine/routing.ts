/**
 * Routes a signal's labels to (target, side) pairs (design §4): per target, the first side whose
 * matcher list (or, with `anyOf`, any of its lists) matches all labels; primary is tried first.
 */
import type { Side, SideMatch, WorkerConfig, WorkerTarget } from "../../shared/config.ts";
import { type Matcher, matchesAll, parseMatcher } from "../../shared/matchers.ts";

/** One place a signal goes. */
export interface Route {
  target: string;
  side: Side;
}

type CompiledTarget = { name: string; sides: [Side, Matcher[][]][] };

const compiled = new WeakMap<WorkerConfig, CompiledTarget[]>();

function compileSide(match: SideMatch): Matcher[][] {
  const lists = [...(match.matchers ? [match.matchers] : []), ...(match.anyOf ?? [])];
  return lists.map((list) => list.map(parseMatcher));
}

function compile(config: WorkerConfig): CompiledTarget[] {
  const cached = compiled.get(config);
  if (cached) return cached;
  const out = Object.entries(config.targets).map(([name, t]) => ({
    name,
    sides: [
      ["primary", compileSide(t.sides.primary)],
      ["secondary", compileSide(t.sides.secondary)],
    ] as [Side, Matcher[][]][],
  }));
  compiled.set(config, out);
  return out;
}

/** Every (target, side) the labels route to; empty when no target matches. */
export function routeLabels(config: WorkerConfig, labels: Readonly<Record<string, string>>): Route[] {
  const routes: Route[] = [];
  for (const target of compile(config)) {
    const hit = target.sides.find(([, lists]) => lists.some((list) => matchesAll(list, labels)));
    if (hit) routes.push({ target: target.name, side: hit[0] });
  }
  return routes;
}

/** The side of one target the labels route to (primary first), or null: how stored signals are routed again (§4). */
export function routeSide(sides: WorkerTarget["sides"], labels: Readonly<Record<string, string>>): Side | null {
  for (const side of ["primary", "secondary"] as const) {
    if (compileSide(sides[side]).some((list) => matchesAll(list, labels))) return side;
  }
  return null;
}
