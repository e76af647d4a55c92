/**
 * DigitalOcean DNS over its v2 API (https://docs.digitalocean.com/reference/api/digitalocean/#tag/Domain-Records):
 * `GET /v2/domains/{domain}/records?type=&name=<fqdn>&page=&per_page=` (paginated, `links.pages.next`),
 * `PUT|DELETE /v2/domains/{domain}/records/{id}`, `POST /v2/domains/{domain}/records`. Record names
 * in bodies are relative to the domain (`@` for the apex); CNAME data is a FQDN ending in a dot.
 * Errors as `{id, message}`; 429 with Retry-After.
 */
import { z } from "zod";
import { DnsError } from "./errors.ts";
import { createHttpApi, type RateLimitPolicy } from "./http-api.ts";
import type { DnsProvider, DnsRecordRef, ProviderDeps } from "./provider.ts";
import { createRecordSetProvider, type ProviderRecord } from "./record-plan.ts";

/** DigitalOcean's public API base. */
export const DIGITALOCEAN_API = "https://api.digitalocean.com";
/** DigitalOcean allows up to 200 per page. */
const PER_PAGE = 200;

const DoRecord = z.object({
  id: z.number(),
  type: z.string(),
  name: z.string(),
  data: z.string(),
  ttl: z.number().optional(),
});
const DoList = z.object({
  domain_records: z.array(DoRecord),
  links: z
    .object({ pages: z.object({ next: z.string().optional() }).partial().optional() })
    .partial()
    .optional(),
});
const DoErrorBody = z.object({ id: z.string().optional(), message: z.string() });

/** `message (id)` from a DigitalOcean error body. */
export function digitalOceanErrorMessage(body: unknown): string | undefined {
  const parsed = DoErrorBody.safeParse(body);
  if (!parsed.success) return undefined;
  return parsed.data.id ? `${parsed.data.message} (${parsed.data.id})` : parsed.data.message;
}

/** Settings for the DigitalOcean provider. */
export interface DigitalOceanOptions {
  domain: string;
  token: string;
  /** @default DIGITALOCEAN_API */
  baseUrl?: string;
  rateLimit?: RateLimitPolicy;
}

/** The name relative to the domain, as DigitalOcean stores it (`@` for the apex). */
export function relativeName(fqdn: string, domain: string): string {
  const name = fqdn.replace(/\.$/, "").toLowerCase();
  const zone = domain.replace(/\.$/, "").toLowerCase();
  if (name === zone) return "@";
  if (!name.endsWith(`.${zone}`)) {
    throw new DnsError("DNS_NOTZONE", `digitalocean: ${fqdn} is not inside the domain ${domain}`);
  }
  return name.slice(0, -(zone.length + 1));
}

/** A DnsProvider over the DigitalOcean API. */
export function createDigitalOceanProvider(options: DigitalOceanOptions, deps: ProviderDeps): DnsProvider {
  const api = createHttpApi({
    provider: "digitalocean",
    baseUrl: options.baseUrl ?? DIGITALOCEAN_API,
    token: options.token,
    fetch: deps.fetch ?? fetch,
    sleep: deps.sleep,
    timeoutMs: deps.requestTimeoutMs,
    signal: deps.signal,
    errorMessage: digitalOceanErrorMessage,
    rateLimit: options.rateLimit,
  });
  const domainPath = `/v2/domains/${encodeURIComponent(options.domain)}/records`;

  async function list(record: DnsRecordRef): Promise<ProviderRecord[]> {
    const relative = relativeName(record.name, options.domain);
    // The `name` filter takes the fully qualified name (DigitalOcean API reference, list records).
    const query = { type: record.type, name: record.name.replace(/\.$/, "") };
    return api.listPages(domainPath, query, PER_PAGE, DoList, (page) => ({
      items: page.domain_records
        .filter((r) => r.type === record.type && r.name.toLowerCase() === relative)
        .map((r) => ({ id: String(r.id), value: r.data })),
      more: Boolean(page.links?.pages?.next) && page.domain_records.length > 0,
    }));
  }

  const body = (record: DnsRecordRef, value: string) => ({
    type: record.type,
    name: relativeName(record.name, options.domain),
    data: record.type === "CNAME" && !value.endsWith(".") ? `${value}.` : value,
    ttl: record.ttl,
  });

  return createRecordSetProvider({
    provider: "digitalocean",
    description: `digitalocean domain ${options.domain}`,
    list,
    update: (record, current, value) => api.request("PUT", `${domainPath}/${current.id}`, body(record, value)),
    create: (record, value) => api.request("POST", domainPath, body(record, value)),
    remove: (current) => api.request("DELETE", `${domainPath}/${current.id}`),
  });
}
