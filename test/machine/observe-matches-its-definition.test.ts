/**
 * `observe()` (design §4) runs on every batch that changed a signal, in one pass. This holds it to
 * the definition written out filter by filter: per side, the distinct sources of fresh firing HARD
 * signals (held apart from the rest), the sources whose firing HARD signals are all stale, the
 * fresh incidents, and when the next fresh one goes stale.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isHeld, isStale, type ObservedSignal, observe } from "../../worker/engine/signals.ts";

function byDefinition(signals: readonly ObservedSignal[], now: number, staleAfterMs: number) {
  let staleAt: number | null = null;
  const side = (name: "primary" | "secondary") => {
    const firing = signals.filter((s) => s.side === name && s.status === "firing" && !s.soft);
    const fresh = firing.filter((s) => !isStale(s, now, staleAfterMs));
    for (const s of fresh) {
      if (staleAfterMs > 0) staleAt = Math.min(staleAt ?? Number.POSITIVE_INFINITY, s.lastSeen + staleAfterMs);
    }
    const distinct = (list: readonly ObservedSignal[]) => [...new Set(list.map((s) => s.source))].sort();
    const firingSources = distinct(fresh.filter((s) => !isHeld(s.notices)));
    const heldSources = distinct(fresh.filter((s) => isHeld(s.notices)));
    const freshSources = new Set([...firingSources, ...heldSources]);
    return {
      firingSources,
      heldSources,
      staleSources: distinct(firing.filter((s) => isStale(s, now, staleAfterMs))).filter((x) => !freshSources.has(x)),
      incidents: [...new Set(fresh.map((s) => s.incident))].sort(),
    };
  };
  return { primary: side("primary"), secondary: side("secondary"), staleAt };
}

const NOW = 1_800_000_000_000;
const signalArb: fc.Arbitrary<ObservedSignal> = fc.record({
  side: fc.constantFrom("primary" as const, "secondary" as const),
  source: fc.constantFrom("alertmanager" as const, "nagios" as const),
  status: fc.constantFrom("firing" as const, "firing" as const, "resolved" as const),
  soft: fc.boolean(),
  notices: fc.record(
    {
      flapping: fc.record({ active: fc.boolean() }),
      downtime: fc.record({ active: fc.boolean() }),
    },
    { requiredKeys: [] },
  ) as fc.Arbitrary<ObservedSignal["notices"]>,
  incident: fc.constantFrom("a#1", "a#2", "b#1"),
  lastSeen: fc.integer({ min: NOW - 120_000, max: NOW }),
});

describe("observe", () => {
  it("equals the definition for any signals, clock and staleness", () => {
    fc.assert(
      fc.property(
        fc.array(signalArb, { maxLength: 30 }),
        fc.constantFrom(0, 30_000, 60_000),
        fc.integer({ min: 0, max: 90_000 }),
        (signals, staleAfterMs, ahead) => {
          const now = NOW + ahead;
          expect(observe(signals, now, staleAfterMs)).toEqual(byDefinition(signals, now, staleAfterMs));
          // Any iterable, in any order: the store hands it the values of a Map.
          expect(observe(new Map(signals.map((s, i) => [i, s])).values(), now, staleAfterMs)).toEqual(
            byDefinition([...signals].reverse(), now, staleAfterMs),
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});
