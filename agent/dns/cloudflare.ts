/**
 * Cloudflare DNS over its v4 API (https://developers.cloudflare.com/api/resources/dns/subresources/records/):
 * `GET /zones/{zone_id}/dns_records?type=&name=&page=&per_page=` (paginated, `result_info.total_pages`),
 * `PUT|DELETE /zones/{zone_id}/dns_records/{id}`, `POST /zones/{zone_id}/dns_records`; errors as
 * `{success:false, errors:[{code, message}]}`; 429 with Retry-After.
 */
import { z } from "zod";
import { createHttpApi, type RateLimitPolicy } from "./http-api.ts";
import type { DnsProvider, DnsRecordRef, ProviderDeps } from "./provider.ts";
import { createRecordSetProvider, type ProviderRecord } from "./record-plan.ts";

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
/** A record of the set, as the shared replace sees it; `proxied` survives a rewrite in place. */
interface CfRecordSetMember extends ProviderRecord {
  proxied: boolean;
}
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

  /** The record set's records (all pages), with what a rewrite must keep (`proxied`). */
  async function list(record: DnsRecordRef): Promise<CfRecordSetMember[]> {
    const fqdn = record.name.replace(/\.$/, "");
    return api.listPages(zonePath, { type: record.type, name: fqdn }, PER_PAGE, CfList, (page, n) => ({
      // `name` filters exactly, but be strict anyway: a different record must never be rewritten.
      items: page.result
        .filter((r) => r.type === record.type && r.name.toLowerCase() === fqdn.toLowerCase())
        .map((r) => ({ id: r.id, value: r.content, proxied: r.proxied ?? false })),
      more: n < (page.result_info?.total_pages ?? 1) && page.result.length > 0,
    }));
  }

  const body = (record: DnsRecordRef, content: string, proxied: boolean) => ({
    type: record.type,
    name: record.name.replace(/\.$/, ""),
    content,
    ttl: record.ttl,
    proxied,
  });

  return createRecordSetProvider({
    provider: "cloudflare",
    description: `cloudflare zone ${options.zoneId}`,
    list,
    update: (record, current, value) =>
      api.request("PUT", `${zonePath}/${encodeURIComponent(current.id)}`, body(record, value, current.proxied)),
    create: (record, value) => api.request("POST", zonePath, body(record, value, false)),
    remove: (current) => api.request("DELETE", `${zonePath}/${encodeURIComponent(current.id)}`),
  });
}
