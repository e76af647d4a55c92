/** Retry-After as RFC 9110 §10.2.3 gives it: whole seconds or an HTTP date; anything else is unreadable. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { retryAfterMs } from "../../shared/retry-after.ts";

const NOW = Date.parse("2026-12-01T12:00:00.000Z");

describe("retryAfterMs", () => {
  it("reads delay-seconds and HTTP dates; a past date is 0", () => {
    expect(retryAfterMs("15", NOW)).toBe(15_000);
    expect(retryAfterMs(" 0 ", NOW)).toBe(0);
    expect(retryAfterMs("Tue, 01 Dec 2026 12:00:30 GMT", NOW)).toBe(30_000);
    expect(retryAfterMs("Tue, 01 Dec 2026 11:00:00 GMT", NOW)).toBe(0);
  });

  it("is undefined when absent or not a number of seconds or a date", () => {
    for (const v of [null, undefined, "", "soon", "-5", "1.5", "0x10"])
      expect(retryAfterMs(v, NOW), String(v)).toBe(undefined);
  });

  it("never answers a negative or fractional wait, whatever the header", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (header) => {
        const ms = retryAfterMs(header, NOW);
        if (ms !== undefined) expect(Number.isInteger(ms) && ms >= 0).toBe(true);
      }),
    );
  });
});
