/**
 * Readiness of a `dns-flip` target (runbook B) toward side `to`: the executor's preflight and a
 * dry-run update, which for rfc2136 is a TSIG-signed UPDATE carrying only the prerequisite that
 * the record holds what it holds now (RFC 2136 §2.4.2) and no update section, so the server checks
 * the key and the prerequisite and changes nothing (the zone's serial stays). For the HTTP
 * providers the dry run is their read-compare with the API token.
 * - `dns-server`: the server (or provider API) answers a read of the record;
 * - `dns-key`: the prerequisite-only UPDATE (or the API read with its token) is accepted;
 * - `record-value`: the record holds `values[from]`, `values[to]` (already flipped), or a state
 *   an interrupted flip left; anything else makes the flip stop at preflight.
 * All are destination checks: the DNS server is what the switch writes to.
 * Drift: the record still holds the values of the side a switch would leave.
 */
import { type DnsFlipTarget, otherSide, type Side } from "../../shared/config.ts";
import type { ReadinessCheck } from "../../shared/protocol.ts";
import { DnsError } from "../dns/errors.ts";
import { createProvider, type DnsProvider, type DnsRecordRef } from "../dns/provider.ts";
import { canonicalSet, sameSet } from "../dns/rfc2136.ts";
import { isInterruptedFlip } from "../executors/dns-flip.ts";
import { destination, type Evaluation, type ReadinessContext, type TargetReadiness } from "./check.ts";

/** Errors that come from a server that answered: its key or its data, not its reachability. */
const ANSWERED = new Set([
  "DNS_BADSIG",
  "DNS_BADKEY",
  "DNS_BADTIME",
  "DNS_NOTAUTH",
  "DNS_REFUSED",
  "DNS_NOTZONE",
  "DNS_RESPONSE_UNSIGNED",
  "DNS_RESPONSE_BADSIG",
  "DNS_API_AUTH",
]);

function show(target: DnsFlipTarget, values: readonly string[]): string {
  const set = canonicalSet(target.record.type, values);
  return set.length === 0 ? "nothing" : set.join(", ");
}

function errorText(err: unknown): string {
  return err instanceof DnsError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);
}

/** The checks of one dns-flip target toward `to`, and the record's values when they could be read. */
export async function dnsChecks(
  target: DnsFlipTarget,
  to: Side,
  ctx: ReadinessContext,
): Promise<{ checks: ReadinessCheck[]; current: string[] | undefined }> {
  const from = otherSide(to);
  const record: DnsRecordRef = { name: target.record.name, type: target.record.type, ttl: target.record.ttl };
  const where =
    target.provider.type === "rfc2136"
      ? `${target.provider.server} (zone ${target.provider.zone})`
      : target.provider.type;
  let provider: DnsProvider;
  try {
    provider = createProvider(target.provider, {
      env: ctx.env,
      fetch: ctx.fetch,
      // Nothing here retries or waits; a probe that would have to is a failing check.
      sleep: async () => {},
      requestTimeoutMs: ctx.timeoutMs ?? 3000,
    });
  } catch (err) {
    const detail = errorText(err);
    return {
      current: undefined,
      checks: [destination("dns-key", false, `${detail} (the key or token the agent's Secret should hold)`)],
    };
  }

  let current: string[];
  try {
    current = await provider.read(record);
  } catch (err) {
    const detail = errorText(err);
    const answered = err instanceof DnsError && ANSWERED.has(err.code);
    // A server that does not answer is one finding; the key and the value are then not known.
    return {
      current: undefined,
      checks: answered
        ? [
            destination("dns-server", true, `${where} answers`),
            destination(
              "dns-key",
              false,
              `${where} refused the signed read: ${detail} (check the key in the agent's Secret against the DNS server's)`,
            ),
          ]
        : [
            destination(
              "dns-server",
              false,
              `${where} does not answer: ${detail} (is the DNS server running and reachable from the agent?)`,
            ),
          ],
    };
  }

  const type = target.record.type;
  const holdsFrom = sameSet(type, current, target.values[from]);
  const holdsTo = sameSet(type, current, target.values[to]);
  const valueOk = holdsFrom || holdsTo || isInterruptedFlip(type, current, target.values[from], target.values[to]);
  const value = destination(
    "record-value",
    valueOk,
    holdsTo
      ? `${record.name} already holds ${show(target, current)} (${to})`
      : holdsFrom
        ? `${record.name} holds ${show(target, current)} (${from})`
        : valueOk
          ? `${record.name} holds ${show(target, current)}, part way between ${from} and ${to}; a flip finishes it`
          : `${record.name} holds ${show(target, current)}, neither ${from} (${show(target, target.values[from])}) nor ${to} (${show(target, target.values[to])}): changed out of band? a flip would stop at preflight`,
  );

  let key: ReadinessCheck;
  try {
    // The prerequisite is what was just read, so only a concurrent change (or the key) can fail it.
    const r = await provider.replace(record, current, target.values[to], { dryRun: true });
    key = destination("dns-key", true, r.detail);
  } catch (err) {
    key = destination(
      "dns-key",
      false,
      `the dry-run update was refused: ${errorText(err)} (check the key or token in the agent's Secret against the DNS server's)`,
    );
  }
  return { current, checks: [destination("dns-server", true, `${where} answers`), key, value] };
}

/** Whether the record still holds the values of `active`. */
export function dnsDrift(target: DnsFlipTarget, active: Side, current: string[] | undefined): Evaluation["drift"] {
  if (current === undefined) return { ok: false, detail: `${target.record.name} could not be read` };
  return sameSet(target.record.type, current, target.values[active])
    ? { ok: true, detail: `${target.record.name} holds ${show(target, current)} (${active})` }
    : {
        ok: false,
        detail: `${target.record.name} holds ${show(target, current)}, not ${active}'s ${show(target, target.values[active])}`,
      };
}

/** Readiness of a dns-flip target toward `to`. */
export const dnsFlipReadiness: TargetReadiness<DnsFlipTarget> = async (_name, target, to, ctx) => {
  const { checks, current } = await dnsChecks(target, to, ctx);
  return { checks, drift: dnsDrift(target, otherSide(to), current) };
};
