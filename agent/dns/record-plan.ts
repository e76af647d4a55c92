/**
 * How an HTTP provider turns one record set into another with the fewest writes: keep records
 * already holding a wanted value, rewrite the others in place, create what is missing, delete
 * the surplus (in that order, so the name never resolves to nothing mid-way). The read-compare
 * before the writes and the report are the same for every HTTP provider, so they live here too:
 * a provider only says how to list, update, create and delete one record.
 */
import { DnsError } from "./errors.ts";
import type { DnsProvider, DnsRecordRef } from "./provider.ts";
import { canonicalSet, type FlipRecordType, normalizeValue, sameSet } from "./rfc2136.ts";

/** A provider-side record: its id and value. */
export interface ProviderRecord {
  id: string;
  value: string;
}

/** The writes that turn `current` into `next`: records rewritten in place, values added, records deleted. */
export interface RecordPlan<R extends ProviderRecord> {
  update: { current: R; value: string }[];
  create: string[];
  remove: R[];
}

/** Plans the writes turning the records `current` into exactly the values `next`. */
export function planRecordChanges<R extends ProviderRecord>(
  type: FlipRecordType,
  current: readonly R[],
  next: readonly string[],
): RecordPlan<R> {
  const wanted = [...new Set(next.map((v) => normalizeValue(type, v)))];
  const spare: R[] = [];
  const kept = new Set<string>();
  for (const rec of current) {
    const v = normalizeValue(type, rec.value);
    if (wanted.includes(v) && !kept.has(v)) kept.add(v);
    else spare.push(rec);
  }
  const missing = wanted.filter((v) => !kept.has(v));
  const update: RecordPlan<R>["update"] = [];
  while (missing.length > 0 && spare.length > 0) {
    const rec = spare.shift();
    const value = missing.shift();
    if (rec && value !== undefined) update.push({ current: rec, value });
  }
  return { update, create: missing, remove: spare };
}

/** One HTTP provider's record operations; `R` carries whatever else a rewrite must keep. */
export interface RecordApi<R extends ProviderRecord> {
  /** The provider's name, first in every detail and error (`cloudflare`, `digitalocean`). */
  provider: string;
  /** See DnsProvider.description. */
  description: string;
  /** Every record of the record set (all pages). */
  list(record: DnsRecordRef): Promise<R[]>;
  /** Rewrites the record `current` in place to hold `value`. */
  update(record: DnsRecordRef, current: R, value: string): Promise<unknown>;
  create(record: DnsRecordRef, value: string): Promise<unknown>;
  remove(current: R): Promise<unknown>;
}

/** A DnsProvider whose replace is a read-compare, then the planned writes one request each. */
export function createRecordSetProvider<R extends ProviderRecord>(api: RecordApi<R>): DnsProvider {
  return {
    description: api.description,
    async read(record) {
      return canonicalSet(
        record.type,
        (await api.list(record)).map((r) => r.value),
      );
    },
    async replace(record, expectedOld, next, { dryRun }) {
      const records = await api.list(record);
      const current = records.map((r) => r.value);
      if (!sameSet(record.type, current, expectedOld)) {
        throw new DnsError(
          "DNS_VALUE_MISMATCH",
          `${api.provider}: ${record.name} ${record.type} holds [${canonicalSet(record.type, current).join(", ")}], not the expected [${canonicalSet(record.type, expectedOld).join(", ")}]; nothing changed`,
        );
      }
      if (dryRun) {
        return {
          action: "checked",
          detail: `${api.provider}: ${record.name} holds the expected value (dry run: nothing written)`,
        };
      }
      const plan = planRecordChanges(record.type, records, next);
      for (const u of plan.update) await api.update(record, u.current, u.value);
      for (const value of plan.create) await api.create(record, value);
      for (const rec of plan.remove) await api.remove(rec);
      return {
        action: "replaced",
        detail: `${api.provider}: ${record.name} ${record.type} → ${canonicalSet(record.type, next).join(", ")} (${plan.update.length} updated, ${plan.create.length} created, ${plan.remove.length} deleted)`,
      };
    },
  };
}
