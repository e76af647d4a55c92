/**
 * Policy variants (`--policy 'k=v,k=v'`, design §10): each is the configured policy with some
 * keys replaced, for every target or (`target:k=v`) for one. Every variant is validated by the
 * worker's own PolicySchema, so a variant the worker would refuse is refused here too.
 */
import { formatIssues, type Policy, PolicySchema, type WorkerConfig } from "../../shared/config.ts";

/** One `[target:]key=value` item. */
export interface PolicyOverride {
  target: string | null;
  /** `flap.windowSeconds` → ["flap", "windowSeconds"]. */
  path: string[];
  value: string | number | boolean;
}

/** A named set of overrides; the variant with none is "as configured". */
export interface Variant {
  name: string;
  overrides: PolicyOverride[];
}

/** The baseline every run includes first: the policies exactly as the config gives them. */
export const AS_CONFIGURED: Variant = { name: "as configured", overrides: [] };

const ITEM = /^(?:([a-z0-9][a-z0-9-]*):)?([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)*)=(.*)$/;

function parseValue(text: string): string | number | boolean {
  if (/^-?\d+$/.test(text)) return Number(text);
  if (text === "true" || text === "false") return text === "true";
  return text;
}

/** Parses one `--policy` argument; the error names the item that is not `[target:]key=value`. */
export function parseVariant(text: string): { ok: true; variant: Variant } | { ok: false; message: string } {
  const overrides: PolicyOverride[] = [];
  for (const raw of text.split(",")) {
    const item = raw.trim();
    if (item === "") continue;
    const m = ITEM.exec(item);
    if (!m) {
      return {
        ok: false,
        message: `--policy ${JSON.stringify(text)}: ${JSON.stringify(item)} is not key=value or target:key=value`,
      };
    }
    const [, target, key = "", value = ""] = m;
    overrides.push({ target: target ?? null, path: key.split("."), value: parseValue(value.trim()) });
  }
  if (overrides.length === 0) return { ok: false, message: `--policy ${JSON.stringify(text)}: no key=value given` };
  return { ok: true, variant: { name: text.trim(), overrides } };
}

function setPath(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  const [head, ...rest] = path;
  if (head === undefined) return;
  if (rest.length === 0) {
    obj[head] = value;
    return;
  }
  const child = obj[head];
  const next: Record<string, unknown> =
    child !== null && typeof child === "object" && !Array.isArray(child)
      ? { ...(child as Record<string, unknown>) }
      : {};
  setPath(next, rest, value);
  obj[head] = next;
}

/** Each target's policy under a variant, or the problems (unknown target, a value the schema refuses). */
export function variantPolicies(
  config: WorkerConfig,
  variant: Variant,
): { ok: true; policies: Record<string, Policy> } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  for (const o of variant.overrides) {
    if (o.target !== null && !(o.target in config.targets)) {
      problems.push(
        `--policy ${JSON.stringify(variant.name)}: no target ${JSON.stringify(o.target)} in the config (targets: ${Object.keys(config.targets).sort().join(", ")})`,
      );
    }
  }
  const policies: Record<string, Policy> = {};
  for (const name of Object.keys(config.targets).sort()) {
    const target = config.targets[name];
    if (!target) continue;
    const policy = structuredClone(target.policy) as unknown as Record<string, unknown>;
    for (const o of variant.overrides) if (o.target === null || o.target === name) setPath(policy, o.path, o.value);
    const parsed = PolicySchema.safeParse(policy);
    if (parsed.success) policies[name] = parsed.data;
    else {
      for (const p of formatIssues(parsed.error)) {
        problems.push(`--policy ${JSON.stringify(variant.name)}: ${name}: policy.${p.path}: ${p.message}`);
      }
    }
  }
  return problems.length > 0 ? { ok: false, problems: [...new Set(problems)] } : { ok: true, policies };
}
