/**
 * etcd v3 clients for the etcd-sync-teardown target (npm `etcd3`, real-components §2). TLS client
 * certificates come from the config's `tls` files; every call carries a deadline so an unreachable
 * member (the disaster case) fails within a bounded time instead of hanging.
 */
import { readFileSync } from "node:fs";
import { Etcd3, type IOptions } from "etcd3";
import type { EtcdSyncTeardownTarget } from "../../shared/config.ts";

export type EtcdTls = NonNullable<EtcdSyncTeardownTarget["etcd"]["tls"]>;

export interface EtcdClientOptions {
  endpoints: readonly string[];
  tls?: EtcdTls;
  /**
   * Deadline of each gRPC call in ms. etcd3 1.1.2 declares `dialTimeout` but never reads it, so
   * the bound comes from a per-call deadline (grpc CallOptions). @default 3000
   */
  callTimeoutMs?: number;
}

/** Opens an etcd3 client; the caller must `close()` it. */
export function createEtcdClient(options: EtcdClientOptions): Etcd3 {
  const timeout = options.callTimeoutMs ?? 3000;
  const opts: IOptions = {
    hosts: [...options.endpoints],
    // A factory, so each call gets a fresh deadline rather than one fixed at construction.
    defaultCallOptions: () => ({ deadline: Date.now() + timeout }),
    // grpc-js refuses responses over 4 MB by default; one page of large Kubernetes objects (etcd
    // allows values up to 1.5 MB) can exceed that, and the page size already bounds memory.
    grpcOptions: { "grpc.max_receive_message_length": -1 },
  };
  if (options.tls) {
    opts.credentials = {
      rootCertificate: readFileSync(options.tls.caFile),
      certChain: readFileSync(options.tls.certFile),
      privateKey: readFileSync(options.tls.keyFile),
    };
  }
  return new Etcd3(opts);
}
