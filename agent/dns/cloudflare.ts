/**
 * Cloudflare DNS over its v4 API (https://developers.cloudflare.com/api/resources/dns/subresources/records/):
 * `GET /zones/{zone_id}/dns_records?type=&name=&page=&per_page=` (paginated, `result_info.total_pages`),
 * `PUT|DELETE /zones/{zone_id}/dns_records/{id}`, `POST /zones/{zone_id}/dns_records`; errors as
 * `{success:false, errors:[{code, message}]}`; 429 with Retry-After.
 */
import { z } from "zod";
import { DnsError } from "./errors.ts";
import { createHttpApi, type RateLimitPolicy } from "./http-api.ts";
import type { DnsProvider, ProviderDeps } from "./provider.ts";
import { planRecordChanges } from "./record-plan.ts";
import { canonicalSet, sameSet } from "./rfc2136.ts";

/** Cloudflare's public API base. */
export const CLOUDFLARE_API = "https://api.cloudflare.com/client/v4";
/** Cloudflare allows up to 5000 per page for DNS records; 100 keeps pages small and paging tested. */
const PER_PAGE = 100;

const CfRecord = z.object({
  id: z.string(),
  type: z.string(),
  name: z.string(),
  content: z.string(),
  ttl: z.number().optional(),
  proxied: z.boolean().optional(),
});
const CfList = z.object({
  success: z.literal(true),
  result: z.array(CfRecord),
  result_info: z.object({ page: z.number(), total_pages: z.number() }).partial().optional(),
});
const CfErrorBody = z.object({ errors: z.array(z.object({ code: z.number().optional(), message: z.string() })) });

/** `message (code n); …` from a Cloudflare error body. */
export function cloudflareErrorMessage(body: unknown): string | undefined {
  const parsed = CfErrorBody.safeParse(body);
  if (!parsed.success || parsed.data.errors.length === 0) return undefined;
  return parsed.data.errors.map((e) => (e.code === undefined ? e.message : `${e.message} (code ${e.code})`)).join("; ");
}

/** Settings for the Cloudflare provider. */
export interface CloudflareOptions {
  zoneId: string;
  token: string;
  /** @default CLOUDFLARE_API */
  baseUrl?: string;
  rateLimit?: RateLimitPolicy;
}

/** A DnsProvider over the Cloudflare API. */
export function createCloudflareProvider(options: CloudflareOptions, deps: ProviderDeps): DnsProvider {
  const api = createHttpApi({
    provider: "cloudflare",
    baseUrl: options.baseUrl ?? CLOUDFLARE_API,
    token: options.token,
    fetch: deps.fetch ?? fetch,
    sleep: deps.sleep,
    timeoutMs: deps.requestTimeoutMs,
    signal: deps.signal,
    errorMessage: cloudflareErrorMessage,
    rateLimit: options.rateLimit,
  });
  const zonePath = `/zones/${encodeURIComponent(options.zoneId)}/dns_records`;

  async function list(name: string, type: string): Promise<z.infer<typeof CfRecord>[]> {
    const out: z.infer<typeof CfRecord>[] = [];
    const fqdn = name.replace(/\.$/, "");
    for (let page = 1; page <= 1000; page++) {
      const query = new URLSearchParams({ type, name: fqdn, page: String(page), per_page: String(PER_PAGE) });
      const parsed = CfList.safeParse(await api.request("GET", `${zonePath}?${query}`));
      if (!parsed.success) throw new DnsError("DNS_API_ERROR", "cloudflare: unexpected list response shape");
      // `name` filters exactly, but be strict anyway: a different record must never be rewritten.
      out.push(...parsed.data.result.filter((r) => r.type === type && r.name.toLowerCase() === fqdn.toLowerCase()));
      const totalPages = parsed.data.result_info?.total_pages ?? 1;
      if (page >= totalPages || parsed.data.result.length === 0) break;
    }
    return out;
  }

  return {
    description: `cloudflare zone ${options.zoneId}`,
    async read(record) {
      const records = await list(record.name, record.type);
      return canonicalSet(
        record.type,
        records.map((r) => r.content),
      );
    },
    async replace(record, expectedOld, next, { dryRun }) {
      const records = await list(record.name, record.type);
      const current = records.map((r) => r.content);
      if (!sameSet(record.type, current, expectedOld)) {
        throw new DnsError(
          "DNS_VALUE_MISMATCH",
          `cloudflare: ${record.name} ${record.type} holds [${canonicalSet(record.type, current).join(", ")}], not the expected [${canonicalSet(record.type, expectedOld).join(", ")}]; nothing changed`,
        );
      }
      if (dryRun) {
        return {
          action: "checked",
          detail: `cloudflare: ${record.name} holds the expected value (dry run: nothing written)`,
        };
      }
      const plan = planRecordChanges(
        record.type,
        records.map((r) => ({ id: r.id, value: r.content })),
        next,
      );
      const byId = new Map(records.map((r) => [r.id, r]));
      const name = record.name.replace(/\.$/, "");
      for (const u of plan.update) {
        const proxied = byId.get(u.id)?.proxied ?? false;
        await api.request("PUT", `${zonePath}/${encodeURIComponent(u.id)}`, {
          type: record.type,
          name,
          content: u.value,
          ttl: record.ttl,
          proxied,
        });
      }
      for (const value of plan.create) {
        await api.request("POST", zonePath, {
          type: record.type,
          name,
          content: value,
          ttl: record.ttl,
          proxied: false,
        });
      }
      for (const id of plan.remove) await api.request("DELETE", `${zonePath}/${encodeURIComponent(id)}`);
      return {
        action: "replaced",
        detail: `cloudflare: ${record.name} ${record.type} → ${canonicalSet(record.type, next).join(", ")} (${plan.update.length} updated, ${plan.create.length} created, ${plan.remove.length} deleted)`,
      };
    },
  };
}
