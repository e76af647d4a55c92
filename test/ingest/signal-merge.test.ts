import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Delivery, mergeSignal, observe, type StoredSignal } from "../../worker/engine/signals.ts";

const deliveryArb: fc.Arbitrary<Delivery> = fc
  .record({
    status: fc.constantFrom("firing" as const, "resolved" as const),
    at: fc.integer({ min: 0, max: 3 }),
    incident: fc.constantFrom("i1", "i2"),
    soft: fc.boolean(),
    note: fc.constantFrom("x", "y"),
    flapping: fc.option(fc.boolean(), { nil: undefined }),
  })
  .map(({ status, at, incident, soft, note, flapping }) => ({
    side: "primary",
    signal: {
      source: "nagios",
      key: "k",
      incident,
      status,
      soft,
      labels: {},
      annotations: { note },
      at,
      receivedAt: 0,
      ...(flapping === undefined ? {} : { notice: { kind: "flapping", active: flapping } }),
    },
  }));

function fold(deliveries: readonly Delivery[]): StoredSignal | undefined {
  let stored: StoredSignal | undefined;
  deliveries.forEach((d, i) => {
    stored = mergeSignal(stored, d, i).next;
  });
  if (!stored) return undefined;
  const { firstSeen: _f, lastSeen: _l, ...rest } = stored;
  return { ...rest, firstSeen: 0, lastSeen: 0 };
}

describe("mergeSignal", () => {
  it("is order- and repetition-insensitive (the stored result is a maximum)", () => {
    fc.assert(
      fc.property(fc.array(deliveryArb, { minLength: 1, maxLength: 8 }), fc.array(fc.nat()), (list, dupes) => {
        const extra = dupes.map((i) => list[i % list.length] as Delivery);
        const reversed = [...list, ...extra].reverse();
        expect(fold(reversed)).toEqual(fold(list));
      }),
      { numRuns: 2000 },
    );
  });

  it("classifies repeats as duplicates and older different updates as stale", () => {
    const firing: Delivery = {
      side: "primary",
      signal: {
        source: "alertmanager",
        key: "am:1",
        incident: "am:1@a",
        status: "firing",
        soft: false,
        labels: {},
        annotations: {},
        at: 10,
        receivedAt: 10,
      },
    };
    const resolved: Delivery = { ...firing, signal: { ...firing.signal, status: "resolved", at: 20 } };
    const first = mergeSignal(undefined, firing, 10);
    expect(first.outcome).toBe("accepted");
    expect(mergeSignal(first.next, firing, 11)).toMatchObject({ outcome: "duplicate", next: { lastSeen: 11 } });
    const second = mergeSignal(first.next, resolved, 12);
    expect(second.outcome).toBe("accepted");
    expect(mergeSignal(second.next, firing, 13)).toEqual({ outcome: "stale", next: second.next });
  });

  it("observes distinct firing sources per side, leaving out SOFT and held signals", () => {
    const base = { status: "firing" as const, soft: false, notices: {}, lastSeen: 0 };
    expect(
      observe([
        { ...base, side: "primary", source: "alertmanager", incident: "am:1#a" },
        { ...base, side: "primary", source: "alertmanager", incident: "am:2#b" },
        { ...base, side: "primary", source: "nagios", soft: true, incident: "nagios:h!s#1" },
        {
          ...base,
          side: "secondary",
          source: "nagios",
          incident: "nagios:h!t#2",
          notices: { downtime: { active: true, at: 1 } },
        },
      ]),
    ).toEqual({
      primary: { firingSources: ["alertmanager"], heldSources: [], staleSources: [], incidents: ["am:1#a", "am:2#b"] },
      secondary: { firingSources: [], heldSources: ["nagios"], staleSources: [], incidents: ["nagios:h!t#2"] },
      staleAt: null,
    });
  });

  it("a firing signal not seen for staleAfter stops counting: stale source, no incident, and says when", () => {
    const base = { status: "firing" as const, soft: false, notices: {}, side: "secondary" as const };
    const signals = [
      { ...base, source: "alertmanager" as const, incident: "am:1#a", lastSeen: 1_000 },
      { ...base, source: "nagios" as const, incident: "nagios:h!s#1", lastSeen: 5_000 },
    ];
    expect(observe(signals, 10_000, 10_000)).toMatchObject({
      secondary: { firingSources: ["alertmanager", "nagios"], staleSources: [] },
      staleAt: 11_000,
    });
    expect(observe(signals, 11_000, 10_000)).toMatchObject({
      secondary: { firingSources: ["nagios"], staleSources: ["alertmanager"], incidents: ["nagios:h!s#1"] },
      staleAt: 15_000,
    });
    expect(observe(signals, 15_000, 10_000)).toMatchObject({
      secondary: { firingSources: [], staleSources: ["alertmanager", "nagios"], incidents: [] },
      staleAt: null,
    });
    // 0 never expires.
    expect(observe(signals, 1e12, 0).secondary.firingSources).toEqual(["alertmanager", "nagios"]);
  });
});
