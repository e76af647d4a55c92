/**
 * How an HTTP provider turns one record set into another with the fewest writes: keep records
 * already holding a wanted value, rewrite the others in place, create what is missing, delete
 * the surplus (in that order, so the name never resolves to nothing mid-way).
 */
import { type FlipRecordType, normalizeValue } from "./rfc2136.ts";

/** A provider-side record: its id and value. */
export interface ProviderRecord {
  id: string;
  value: string;
}

/** The writes that turn `current` into `next`. */
export interface RecordPlan {
  update: { id: string; value: string }[];
  create: string[];
  remove: string[];
}

/** Plans the writes turning the records `current` into exactly the values `next`. */
export function planRecordChanges(
  type: FlipRecordType,
  current: readonly ProviderRecord[],
  next: readonly string[],
): RecordPlan {
  const wanted = [...new Set(next.map((v) => normalizeValue(type, v)))];
  const spare: ProviderRecord[] = [];
  const kept = new Set<string>();
  for (const rec of current) {
    const v = normalizeValue(type, rec.value);
    if (wanted.includes(v) && !kept.has(v)) kept.add(v);
    else spare.push(rec);
  }
  const missing = wanted.filter((v) => !kept.has(v));
  const update: RecordPlan["update"] = [];
  while (missing.length > 0 && spare.length > 0) {
    const rec = spare.shift();
    const value = missing.shift();
    if (rec && value !== undefined) update.push({ id: rec.id, value });
  }
  return { update, create: missing, remove: spare.map((r) => r.id) };
}
