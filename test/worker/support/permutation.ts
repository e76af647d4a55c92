/**
 * Helpers the order-insensitivity properties share (ingest through routing, the object's signal
 * store): a seeded shuffle fast-check can shrink and replay, and the stored signal state with the
 * receipt times and bookkeeping that legitimately differ between runs left out.
 */
import type { StoredSignal } from "../../../worker/engine/signals.ts";

/** A seeded Fisher–Yates shuffle, so fast-check can shrink and replay the order. */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** The stored signal state that must not depend on arrival order (bookkeeping times excluded). */
export const comparable = (signals: StoredSignal[]) =>
  signals.map(({ firstSeen: _f, lastSeen: _l, receivedAt: _r, ...rest }) => rest);
