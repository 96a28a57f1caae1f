/**
 * What the identity listener's routes are given, compiled once from [identity] and [api].
 *
 * Invariant: as for the service API (api/deps.ts), no identity route reads global
 * configuration; the key ring and the revocation list are shared with the service API's
 * authenticator, so a token revoked here is refused there at once.
 */
import type { Logger } from '../../core/log.ts';
import type { Db } from '../db/index.ts';
import type { Clock } from '../liveness.ts';
import type { Revocations } from './revocations.ts';
import type { KeyRing } from './tokens.ts';

export interface IdentitySettings {
  /** [api] admin_token: accepted on the admin routes (bootstrap, service use). */
  adminToken: string;
  /** Seconds a token is valid ([identity] token_expiration). */
  tokenExpiration: number;
  /** [identity] region_id. */
  region: string;
  /** The URLs the catalog lists, with no trailing slash. */
  endpoints: {
    /** http://host:5000 — the catalog's identity URL is `${identity}/v3`. */
    identity: string;
    /** kumo-api's service listener, e.g. http://host:9696 (service roots under it). */
    api: string;
  };
  bodyLimit: number;
}

export interface IdentityDeps {
  db: Db;
  clock: Clock;
  log: Logger;
  ring: KeyRing;
  revocations: Revocations;
  settings: IdentitySettings;
}
