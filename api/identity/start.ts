/**
 * How kumo-api authenticates Keystone tokens, chosen once at start from the config:
 *
 * - its own identity: the token key ring (set up on first start when the repository is
 *   empty, so a fresh install issues tokens without a manual step; replicas must then
 *   share it), the revocation list, and Keystone v3 on [identity] bind_host:bind_port;
 * - an existing Keystone ([keystone_authtoken] auth_url set): tokens are validated there
 *   (external.ts) and kumo-api serves no identity listener of its own — its users,
 *   projects and catalog live in that Keystone.
 *
 * Invariant: the service API and the identity listener share one key ring and one
 * revocation list, so a token revoked on either is refused by both at once; the ring
 * reloads when any replica announces a key rotation (KEYS_CHANNEL).
 */
import type { DaemonContext } from '../../core/daemon.ts';
import type { Logger } from '../../core/log.ts';
import type { Authenticator } from '../caller.ts';
import type { Db } from '../db/index.ts';
import type { Clock } from '../liveness.ts';
import { buildIdentityApp, type IdentitySettings } from './app.ts';
import { localAuthenticator } from './authenticator.ts';
import { externalAuthenticator } from './external.ts';
import { followRotations, openKeyRing, setupKeys } from './keys.ts';
import { openRevocations } from './revocations.ts';

type Config = DaemonContext['config'];

export interface IdentityService {
  tokens: Authenticator;
  listen(): Promise<void>;
  close(): Promise<void>;
}

/** The token key repository: [identity] key_repository, else <state_path>/token-keys. */
export const keyRepositoryOf = (config: Config) =>
  config.identity.key_repository ?? `${config.DEFAULT.state_path}/token-keys`;

/** The identity listener's URL: [identity] public_endpoint, else its bind address. */
export function identityEndpoint(config: Config): string {
  if (config.identity.public_endpoint) return config.identity.public_endpoint;
  const { bind_host, bind_port } = config.identity;
  return `http://${bind_host === '0.0.0.0' ? config.DEFAULT.host : bind_host}:${bind_port}`;
}

function external(config: Config, log: Logger): IdentityService | undefined {
  const k = config.keystone_authtoken;
  if (!k.auth_url) return undefined;
  const need = (key: 'username' | 'password' | 'project_name') => {
    const v = k[key];
    if (v === undefined) throw new Error(`[keystone_authtoken] ${key}: is required with auth_url`);
    return v;
  };
  const tokens = externalAuthenticator({
    authUrl: k.auth_url,
    username: need('username'),
    password: need('password'),
    projectName: need('project_name'),
    userDomainName: k.user_domain_name,
    projectDomainName: k.project_domain_name,
    cacheSeconds: k.token_cache_time,
  });
  log.info({ auth_url: k.auth_url }, 'tokens are validated by an external Keystone');
  return { tokens, listen: async () => {}, close: async () => {} };
}

export async function startIdentity(
  config: Config,
  deps: { db: Db; clock: Clock; log: Logger },
  settings: IdentitySettings,
): Promise<IdentityService> {
  const ext = external(config, deps.log);
  if (ext) return ext;
  const dir = keyRepositoryOf(config);
  setupKeys(dir);
  deps.log.info({ key_repository: dir }, 'token keys ready');
  const ring = openKeyRing({
    dir,
    onReloadError: (e) =>
      deps.log.error(
        { key_repository: dir, err: e.message },
        'cannot reload token keys; keeping the last ones',
      ),
  });
  const now = () => deps.clock.now().getTime();
  const revocations = await openRevocations({
    db: deps.db,
    now,
    ttlMs: config.identity.token_expiration * 1000,
    log: deps.log,
  });
  const rotations = await followRotations(deps.db, ring);
  const app = buildIdentityApp({ ...deps, ring, revocations, settings });
  const { bind_host, bind_port } = config.identity;
  return {
    tokens: localAuthenticator({ ring, revocations, now }),
    async listen() {
      await app.listen({ host: bind_host, port: bind_port });
      deps.log.info({ host: bind_host, port: bind_port }, 'identity listening');
    },
    async close() {
      await app.close();
      await revocations.close();
      await rotations.close();
    },
  };
}
