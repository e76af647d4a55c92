/**
 * The DNS provider interface the dns-flip executor works against, chosen by `provider.type`:
 * `rfc2136` (signed dynamic update), `cloudflare`, `digitalocean` (their HTTP APIs).
 */
import type { DnsProviderConfig } from "../../shared/config.ts";
import { createCloudflareProvider } from "./cloudflare.ts";
import { createDigitalOceanProvider } from "./digitalocean.ts";
import { DnsError } from "./errors.ts";
import { canonicalSet, type FlipRecordType, queryRecord, sendUpdate } from "./rfc2136.ts";
import { parseTsigSecret } from "./tsig.ts";

/** The record a flip changes. */
export interface DnsRecordRef {
  name: string;
  type: FlipRecordType;
  ttl: number;
}

/** What `replace` did. */
export interface ReplaceResult {
  /** `checked` = dry run: only the compare part ran. */
  action: "replaced" | "checked";
  detail: string;
}

/** One DNS backend. */
export interface DnsProvider {
  /** e.g. "rfc2136 127.0.0.1:5353 zone example.test". */
  readonly description: string;
  /** The record set's current values, canonical and sorted; empty when it does not exist. */
  read(record: DnsRecordRef): Promise<string[]>;
  /**
   * Asks one authoritative `server` for the record set, as verify does. Given, the provider knows
   * how to ask that server in a way it can trust (rfc2136: TSIG-signed to its own server).
   */
  query?(server: string, record: DnsRecordRef, timeoutMs: number): Promise<string[]>;
  /**
   * Replaces the record set's values with `next` only if it still holds exactly `expectedOld`
   * (compare-and-swap); otherwise throws DnsError DNS_NXRRSET / DNS_VALUE_MISMATCH and changes
   * nothing. With `dryRun` only the compare runs.
   */
  replace(
    record: DnsRecordRef,
    expectedOld: readonly string[],
    next: readonly string[],
    options: { dryRun: boolean },
  ): Promise<ReplaceResult>;
}

/** What providers need from the outside world (injected for tests). */
export interface ProviderDeps {
  env: Record<string, string | undefined>;
  fetch?: typeof fetch;
  sleep: (ms: number) => Promise<void>;
  now?: () => number;
  /** Bound on one HTTP API request. @default DEFAULT_REQUEST_TIMEOUT_MS (http-api.ts) */
  requestTimeoutMs?: number;
  /** Aborts HTTP API requests in flight (the step's signal: shutdown, lost leadership). */
  signal?: AbortSignal;
}

function secretFromEnv(env: ProviderDeps["env"], name: string, what: string): string {
  const value = env[name];
  if (!value) throw new DnsError("DNS_CONFIG", `${what}: environment variable ${name} is not set`);
  return value;
}

/** Builds the provider named by `config.type`. */
export function createProvider(config: DnsProviderConfig, deps: ProviderDeps): DnsProvider {
  switch (config.type) {
    case "rfc2136":
      return createRfc2136Provider(config, deps);
    case "cloudflare":
      return createCloudflareProvider(
        {
          zoneId: config.zoneId,
          token: secretFromEnv(deps.env, config.tokenEnv, "cloudflare token"),
          baseUrl: config.baseUrl,
        },
        deps,
      );
    case "digitalocean":
      return createDigitalOceanProvider(
        {
          domain: config.domain,
          token: secretFromEnv(deps.env, config.tokenEnv, "digitalocean token"),
          baseUrl: config.baseUrl,
        },
        deps,
      );
  }
}

function createRfc2136Provider(
  config: Extract<DnsProviderConfig, { type: "rfc2136" }>,
  deps: ProviderDeps,
): DnsProvider {
  let secret: Buffer;
  try {
    secret = parseTsigSecret(secretFromEnv(deps.env, config.tsig.secretEnv, "TSIG secret"));
  } catch (err) {
    if (err instanceof DnsError) throw err;
    throw new DnsError("DNS_CONFIG", `TSIG secret in ${config.tsig.secretEnv}: ${(err as Error).message}`);
  }
  const target = {
    server: config.server,
    zone: config.zone,
    key: { name: config.tsig.name, algorithm: config.tsig.algorithm, secret },
    now: deps.now,
  };
  return {
    description: `rfc2136 ${config.server} zone ${config.zone}`,
    // Queries to the UPDATE's server are signed and only a signed answer counts: a forged
    // answer must not make an unchanged record look flipped (or a flipped one unchanged).
    read: (record) => queryRecord(config.server, record.name, record.type, { key: target.key, now: deps.now }),
    query: (server, record, timeoutMs) =>
      queryRecord(server, record.name, record.type, {
        timeoutMs,
        ...(server === config.server ? { key: target.key, now: deps.now } : {}),
      }),
    async replace(record, expectedOld, next, { dryRun }) {
      const result = await sendUpdate(target, {
        name: record.name,
        type: record.type,
        ttl: record.ttl,
        expected: expectedOld,
        next: dryRun ? undefined : next,
      });
      const values = canonicalSet(record.type, next).join(", ");
      return dryRun
        ? {
            action: "checked",
            detail: `prerequisite-only UPDATE accepted by ${config.server} (key ${config.tsig.name})`,
          }
        : {
            action: "replaced",
            detail: `UPDATE ${record.name} ${record.type} → ${values} accepted by ${config.server} over ${result.transport} in ${Math.round(result.ms)} ms`,
          };
    },
  };
}
