/**
 * The random deliveries the object's signal-store properties feed it (the permutation property,
 * the batched-ingest-matches-reference property): one notice arbitrary and one way of turning the
 * drawn fields into a delivery, so a new notice kind or signal field reaches both properties.
 */
import fc from "fast-check";
import type { Side } from "../../../shared/config.ts";
import type { Delivery } from "../../../worker/engine/signals.ts";

const SOURCES = ["alertmanager", "nagios"] as const;

/** A flapping, downtime or acknowledgement notice, or none; `freq` as fast-check's option (default 6). */
export const noticeArb = (freq?: number) =>
  fc.option(
    fc.oneof(
      fc.record({ kind: fc.constant("flapping" as const), active: fc.boolean() }),
      fc.record({ kind: fc.constant("downtime" as const), active: fc.boolean() }),
      fc.record({
        kind: fc.constant("acknowledgement" as const),
        author: fc.constantFrom("ann", "bob"),
        comment: fc.constant(""),
      }),
    ),
    { nil: undefined, freq },
  );

type Notice = ReturnType<typeof noticeArb> extends fc.Arbitrary<infer N> ? N : never;

/** The drawn fields of one delivery: signal `k<k>`, alternating sources, incident `k<k>#<incident>`. */
export type DeliveryFields = {
  k: number;
  side: Side;
  status: "firing" | "resolved";
  incident: number;
  soft: boolean;
  note: string;
  notice: Notice;
  at: number;
  receivedAt: number;
};

/** The delivery the drawn fields describe. */
export function deliveryOf({
  k,
  side,
  status,
  incident,
  soft,
  note,
  notice,
  at,
  receivedAt,
}: DeliveryFields): Delivery {
  const key = `k${k}`;
  return {
    side,
    signal: {
      source: SOURCES[k % 2] ?? "nagios",
      key,
      incident: `${key}#${incident}`,
      status,
      soft,
      labels: { key },
      annotations: { note },
      at,
      receivedAt,
      // fast-check builds null-prototype records, which RPC cannot clone; spread makes plain ones.
      ...(notice ? { notice: { ...notice } } : {}),
    },
  };
}
