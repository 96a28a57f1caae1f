/**
 * kumo.conf: one INI file per host, compiled once at start into a typed object that is
 * passed down. No module reads configuration on its own.
 *
 * Invariant: compileConfig either returns a complete, validated KumoConfig or throws a
 * ConfigError naming `[section] key`; unknown sections and keys are refused so a typo
 * never silently falls back to a default. checkRequired, run by every daemon right after
 * compiling, refuses a config that lacks a key the daemon cannot run without, so that a
 * missing key stops the daemon at start and not at its first use.
 */
import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { parse as parseIni } from 'ini';
import { HOSTNAME } from '../contracts/schema.ts';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Parser<T> = (raw: string) => T;

const integer =
  (min: number, max: number): Parser<number> =>
  (raw) => {
    const n = Number(raw);
    if (!/^-?\d+$/.test(raw.trim()) || n < min || n > max) {
      throw new Error(`must be an integer between ${min} and ${max}`);
    }
    return n;
  };
const number =
  (min: number, max: number): Parser<number> =>
  (raw) => {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      throw new Error(`must be a number between ${min} and ${max}`);
    }
    return n;
  };
const boolean: Parser<boolean> = (raw) => {
  const v = raw.trim().toLowerCase();
  if (['true', 'yes', '1', 'on'].includes(v)) return true;
  if (['false', 'no', '0', 'off'].includes(v)) return false;
  throw new Error('must be true or false');
};
const pattern =
  (re: RegExp, what: string): Parser<string> =>
  (raw) => {
    if (!re.test(raw)) throw new Error(`must be ${what}`);
    return raw;
  };
const choice =
  <T extends string>(values: readonly T[]): Parser<T> =>
  (raw) => {
    if (!values.includes(raw as T)) throw new Error(`must be one of ${values.join(', ')}`);
    return raw as T;
  };
const list =
  <T>(item: Parser<T>): Parser<T[]> =>
  (raw) =>
    raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map(item);
/** `lo:hi` (inclusive), as Neutron writes vni_ranges and tunnel_id_ranges. */
const idRange =
  (min: number, max: number): Parser<[number, number]> =>
  (raw) => {
    const m = /^(\d+):(\d+)$/.exec(raw);
    const lo = Number(m?.[1]);
    const hi = Number(m?.[2]);
    if (!m || lo < min || hi > max || lo > hi) {
      throw new Error(`must be lo:hi ranges with ${min} <= lo <= hi <= ${max}`);
    }
    return [lo, hi];
  };
const absPath = pattern(/^\/[^\u0000-\u001f\u007f]*$/, 'an absolute path');
const ipv4 = pattern(
  /^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/,
  'an IPv4 address',
);
const token = pattern(/^[A-Za-z0-9._~+/=-]{8,256}$/, 'a token of 8-256 URL-safe characters');
const bridge = pattern(/^[A-Za-z0-9_-]{1,15}$/, 'a bridge name of 1-15 letters, digits, - or _');
const PHYSNET = /^[A-Za-z0-9_.-]{1,64}$/;
/** `physnet:bridge`, as Neutron's [ovs] bridge_mappings. */
const bridgeMapping: Parser<[string, string]> = (raw) => {
  const [physnet = '', name = '', extra] = raw.split(':');
  if (extra !== undefined || !PHYSNET.test(physnet))
    throw new Error('must be physnet:bridge pairs (physnet of letters, digits, _ . -)');
  return [physnet, bridge(name)];
};
/** `physnet` or `physnet:lo:hi`, as Neutron's [ml2_type_vlan] network_vlan_ranges. */
const vlanRange: Parser<{ physnet: string; range: [number, number] | null }> = (raw) => {
  const [physnet = '', ...rest] = raw.split(':');
  if (!PHYSNET.test(physnet)) throw new Error('must be physnet or physnet:lo:hi entries');
  if (rest.length === 0) return { physnet, range: null };
  return { physnet, range: idRange(1, 4094)(rest.join(':')) };
};

const httpUrl: Parser<string> = (raw) => {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error('must be a URL like http://127.0.0.1:9696');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new Error('must use the http:// or https:// scheme');
  return url.href.replace(/\/$/, '');
};

/** oslo's public_endpoint: an http(s) base URL (a path is kept), without trailing slash. */
const endpointUrl: Parser<string> = (raw) => {
  const href = httpUrl(raw);
  const url = new URL(href);
  if (url.search || url.hash || raw.includes('?') || raw.includes('#'))
    throw new Error('must have no query (?) or fragment (#)');
  if (url.username || url.password) throw new Error('must hold no user name or password');
  return href.replace(/\/+$/, '');
};

const TRANSPORT = /^(rabbit|amqp):\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/;
const BROKER_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?)$/;

/** One `[user[:password]@]host[:port]` of a transport URL; credentials stay percent-encoded. */
function brokerHost(raw: string): { auth?: string; host: string; port: number } {
  const at = raw.lastIndexOf('@');
  const auth = at >= 0 ? raw.slice(0, at) : undefined;
  const hostPort = raw.slice(at + 1);
  const m = /^(.*?)(?::([0-9]{1,5}))?$/.exec(hostPort) as RegExpExecArray;
  const host = m[1] as string;
  const port = m[2] === undefined ? 5672 : Number(m[2]);
  if (!BROKER_HOST.test(host)) throw new Error(`has a bad host "${host}"`);
  if (port < 1 || port > 65535) throw new Error(`has a bad port ${port}`);
  if (auth !== undefined && (auth === '' || /[\s/]/.test(auth)))
    throw new Error('has bad credentials before @');
  return { ...(auth !== undefined ? { auth } : {}), host, port };
}

/**
 * oslo.messaging's transport URL, with one broker or several:
 * rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost → one amqp:// URL per broker, in
 * the order given (clients fail over along it). A host without credentials takes the first
 * host's, as oslo's does; the virtual host applies to all; query options are not used.
 */
export const transportUrl: Parser<string[]> = (raw) => {
  const m = TRANSPORT.exec(raw);
  if (!m)
    throw new Error(
      'must be a URL like rabbit://user:password@host:5672/vhost (rabbit:// or amqp:// scheme)',
    );
  const hosts = (m[2] as string).split(',').map(brokerHost);
  if (hosts.length > 16) throw new Error('names more than 16 brokers');
  if (m[4] && m[4] !== '?')
    throw new Error('has query options (?...), which Kumo does not support (no TLS option either)');
  const vhost = m[3] || '/';
  const firstAuth = hosts[0]?.auth;
  return hosts.map(({ auth, host, port }) => {
    const creds = auth ?? firstAuth;
    const url = `amqp://${creds ? `${creds}@` : ''}${host}:${port}${vhost}`;
    try {
      new URL(url);
    } catch {
      throw new Error(`has a broker address that is no valid URL: ${host}:${port}`);
    }
    return url;
  });
};

export type DatabaseUrl = { engine: 'sqlite'; path: string } | { engine: 'postgres'; url: string };

/** SQLAlchemy-style URLs: sqlite:////abs/path.db or postgresql://user:pass@host/db. */
export const databaseUrl: Parser<DatabaseUrl> = (raw) => {
  if (raw.startsWith('sqlite:///')) {
    const path = raw.slice('sqlite:///'.length);
    if (path === ':memory:') return { engine: 'sqlite', path };
    return { engine: 'sqlite', path: absPath(path) };
  }
  if (/^postgres(ql)?(\+\w+)?:\/\//.test(raw)) {
    return { engine: 'postgres', url: raw.replace(/^postgres(ql)?(\+\w+)?:/, 'postgresql:') };
  }
  throw new Error('must be sqlite:////path/to/file.db or postgresql://user:pass@host/db');
};

interface Field<T> {
  parse: Parser<T>;
  default?: string;
}
function f<T>(parse: Parser<T>): Field<T>;
function f<T>(parse: Parser<T>, def: string): Field<T> & { default: string };
function f<T>(parse: Parser<T>, def?: string): Field<T> {
  return def === undefined ? { parse } : { parse, default: def };
}

/** Every section and key kumo.conf may hold, with defaults. */
const SPEC = {
  DEFAULT: {
    host: f(pattern(HOSTNAME, 'a valid host name')),
    state_path: f(absPath, '/var/lib/kumo'),
    debug: f(boolean, 'false'),
    transport_url: f(transportUrl, 'rabbit://guest:guest@127.0.0.1:5672/'),
    rpc_response_timeout: f(number(0.1, 600), '60'),
    agent_down_time: f(number(1, 86400), '30'),
    netns_prefix: f(pattern(/^[A-Za-z0-9_.-]{0,20}$/, 'up to 20 letters, digits, _ . -'), ''),
    dhcp_agents_per_network: f(integer(1, 100), '1'),
    /**
     * Base port of the Prometheus listeners (`GET /metrics`); each daemon adds its offset
     * (core/metrics.ts METRICS_PORT_OFFSETS, largest 6, hence the bound); 0: no listener.
     */
    metrics_port: f(integer(0, 65529), '0'),
    metrics_bind_host: f(ipv4, '127.0.0.1'),
  },
  agent: {
    report_interval: f(number(0.1, 3600), '10'),
    resync_interval: f(number(1, 86400), '60'),
    tunnel_types: f(list(choice(['gre', 'vxlan'] as const)), 'vxlan'),
    /** The zone the DHCP, L3, volume and compute agents report (instance metadata shows it). */
    availability_zone: f(
      pattern(/^[A-Za-z0-9_.:-]{1,64}$/, 'a zone name of letters, digits, _ . : -'),
      'nova',
    ),
  },
  api: {
    bind_host: f(ipv4, '127.0.0.1'),
    bind_port: f(integer(1, 65535), '9696'),
    /** The URL clients reach kumo-api at, for the links it builds (oslo's public_endpoint). */
    public_endpoint: f(endpointUrl),
    admin_token: f(token),
    member_tokens: f(list(token), ''),
    body_limit: f(integer(1024, 1024 * 1024 * 1024), '1048576'),
    allow_automatic_failover: f(boolean, 'true'),
    /** Where image data is stored; <state_path>/images when absent. */
    image_dir: f(absPath),
    /** Largest image upload in bytes (Glance's image_size_cap); default 1 TiB. */
    image_size_limit: f(integer(1, Number.MAX_SAFE_INTEGER), '1099511627776'),
    /** Token compute agents use to download image data (image reads only). */
    service_token: f(token),
    /**
     * Seconds a replica holds the database lease of a periodic job (sweeps, failover, key
     * rotation) without renewing it; a dead holder's jobs move to another replica after it.
     */
    lease_duration: f(number(1, 3600), '15'),
  },
  database: {
    connection: f(databaseUrl),
  },
  identity: {
    /** Keystone v3's own listener (kumo-api serves it beside the service API). */
    bind_host: f(ipv4, '127.0.0.1'),
    bind_port: f(integer(1, 65535), '5000'),
    /** The identity URL clients are given in the catalog; the bind address when absent. */
    public_endpoint: f(endpointUrl),
    /** Seconds a token is valid. */
    token_expiration: f(integer(60, 604800), '3600'),
    /** The signing keys (0 staged, highest primary); <state_path>/token-keys when absent. */
    key_repository: f(absPath),
    /** Keys kept by a rotation: staged, primary and the secondaries still verified. */
    max_active_keys: f(integer(3, 100), '3'),
    /**
     * Hours between automatic rotations of the key repository, by one replica at a time
     * under a lease (the repository must then be shared by the replicas); 0: only
     * `kumo-manage token-keys rotate` rotates.
     */
    key_rotation_interval: f(number(0, 8760), '0'),
    /** The catalog's region. */
    region_id: f(pattern(/^[A-Za-z0-9_.-]{1,64}$/, 'a region name'), 'RegionOne'),
  },
  keystone_authtoken: {
    /** An existing Keystone's v3 URL: when set, incoming tokens are validated there. */
    auth_url: f(httpUrl),
    username: f(pattern(/^[^\u0000-\u001f\u007f]{1,255}$/, 'a user name')),
    password: f(pattern(/^[^\u0000-\u001f\u007f]{1,255}$/, 'a password')),
    project_name: f(pattern(/^[^\u0000-\u001f\u007f]{1,64}$/, 'a project name')),
    user_domain_name: f(pattern(/^[^\u0000-\u001f\u007f]{1,64}$/, 'a domain name'), 'Default'),
    project_domain_name: f(pattern(/^[^\u0000-\u001f\u007f]{1,64}$/, 'a domain name'), 'Default'),
    /** Seconds a validated token is trusted before it is checked again. */
    token_cache_time: f(integer(0, 3600), '60'),
  },
  /** Neutron's per-project defaults (-1: unlimited). */
  quotas: {
    quota_network: f(integer(-1, 2 ** 31 - 1), '100'),
    quota_subnet: f(integer(-1, 2 ** 31 - 1), '100'),
    quota_port: f(integer(-1, 2 ** 31 - 1), '500'),
    quota_router: f(integer(-1, 2 ** 31 - 1), '10'),
    quota_floatingip: f(integer(-1, 2 ** 31 - 1), '50'),
    quota_security_group: f(integer(-1, 2 ** 31 - 1), '10'),
    quota_security_group_rule: f(integer(-1, 2 ** 31 - 1), '100'),
    /** neutron-lbaas's lbaas_quota_opts (LBaaS v1). */
    quota_pool: f(integer(-1, 2 ** 31 - 1), '10'),
    quota_vip: f(integer(-1, 2 ** 31 - 1), '10'),
    quota_member: f(integer(-1, 2 ** 31 - 1), '-1'),
    quota_health_monitor: f(integer(-1, 2 ** 31 - 1), '-1'),
    /** Cinder's quota defaults (quota_volumes, quota_gigabytes, quota_snapshots). */
    quota_volumes: f(integer(-1, 2 ** 31 - 1), '10'),
    quota_gigabytes: f(integer(-1, 2 ** 31 - 1), '1000'),
    quota_snapshots: f(integer(-1, 2 ** 31 - 1), '10'),
  },
  /** Nova's per-project defaults (-1: unlimited). */
  quota: {
    instances: f(integer(-1, 2 ** 31 - 1), '10'),
    cores: f(integer(-1, 2 ** 31 - 1), '20'),
    ram: f(integer(-1, 2 ** 31 - 1), '51200'),
    key_pairs: f(integer(-1, 2 ** 31 - 1), '100'),
  },
  ml2: {
    tenant_network_types: f(list(choice(['vxlan', 'gre'] as const)), 'vxlan'),
    vni_ranges: f(list(idRange(1, 2 ** 24 - 1)), '1:65535'),
    gre_id_ranges: f(list(idRange(1, 2 ** 32 - 1)), '1:65535'),
    flat_networks: f(
      list(pattern(/^(\*|[A-Za-z0-9_.-]{1,64})$/, 'a physical network name or *')),
      '*',
    ),
    global_physnet_mtu: f(integer(576, 65535), '1500'),
    /** Physical networks VLAN networks may use, each with the VLAN ids tenants get. */
    network_vlan_ranges: f(list(vlanRange), ''),
  },
  ovs: {
    integration_bridge: f(bridge, 'br-int'),
    tunnel_bridge: f(bridge, 'br-tun'),
    datapath_type: f(choice(['system', 'netdev'] as const), 'system'),
    local_ip: f(ipv4),
    ovsdb_connection: f(
      pattern(/^(unix:\/[^\u0000-\u001f\u007f]+|tcp:[0-9.]+:\d+)$/, 'unix:/path or tcp:ip:port'),
      'unix:/var/run/openvswitch/db.sock',
    ),
    ovs_rundir: f(absPath, '/var/run/openvswitch'),
    vswitchd_netns: f(pattern(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'a network namespace name')),
    /** Provider networks: which OVS bridge carries each physical network (physnet:bridge). */
    bridge_mappings: f(list(bridgeMapping), ''),
  },
  dhcp: {
    dhcp_lease_duration: f(integer(120, 31536000), '86400'),
    /** Serve 169.254.169.254 from the DHCP namespace on networks with no router. */
    enable_isolated_metadata: f(boolean, 'true'),
  },
  metadata: {
    /** kumo-api's metadata listener (Nova's metadata_listen / metadata_listen_port). */
    bind_host: f(ipv4, '127.0.0.1'),
    bind_port: f(integer(1, 65535), '8775'),
    /** Signs the relays' requests; metadata is off (and said so at start) when absent. */
    metadata_proxy_shared_secret: f(token),
    /** Where the relays in the L3 and DHCP agents reach kumo-api's metadata listener. */
    nova_metadata_host: f(ipv4, '127.0.0.1'),
    nova_metadata_port: f(integer(1, 65535), '8775'),
  },
  l3: {
    agent_mode: f(choice(['legacy'] as const), 'legacy'),
    /** Gratuitous ARPs sent when a gateway or floating IP appears on a qg- port. */
    send_arp_for_ha: f(integer(0, 10), '3'),
  },
  lbaas: {
    device_driver: f(choice(['haproxy_ns'] as const), 'haproxy_ns'),
    /** Seconds between reads of each pool's haproxy stats socket (member health, counters). */
    stats_interval: f(number(0.2, 3600), '5'),
  },
  volume: {
    volume_group: f(
      pattern(/^[A-Za-z0-9+_.-]{1,127}$/, 'an LVM volume group name'),
      'kumo-volumes',
    ),
    target_helper: f(choice(['tgtadm'] as const), 'tgtadm'),
    /** kumo-api: the volume type of a volume created without one (lvm or file). */
    default_volume_type: f(choice(['lvm', 'file'] as const), 'lvm'),
    /** The backend this agent hosts; volume types name it as volume_backend_name. */
    volume_driver: f(choice(['lvm', 'file'] as const), 'lvm'),
    /** Cinder's lvm_type: `default` makes thick LVs, `thin` LVs in the <vg>-pool thin pool. */
    lvm_type: f(choice(['default', 'thin'] as const), 'default'),
    /**
     * false: LVM metadata only (`activation=0`, `-an -Zn`), for hosts without
     * device-mapper; such volumes can be created, snapshotted and deleted, not exported.
     */
    lvm_activation: f(boolean, 'true'),
    /** The file backend's sparse images; <state_path>/volume/files when absent. */
    volumes_dir: f(absPath),
    /** A deleted volume's data: `zero` overwrites it first (thick LVs, files), `none` not. */
    volume_clear: f(choice(['zero', 'none'] as const), 'zero'),
    /** The iSCSI portal tgtd serves targets on, as handed to compute hosts. */
    target_ip_address: f(ipv4, '127.0.0.1'),
    target_port: f(integer(1, 65535), '3260'),
    /** tgtd's control port (`tgtd -C N`, `tgtadm -C N`): several tgtds on one host; tgt takes 0…32767. */
    tgt_control_port: f(integer(0, 32767), '0'),
  },
  compute: {
    instances_path: f(absPath),
    virt_type: f(choice(['kvm', 'qemu'] as const), 'kvm'),
    cpu_allocation_ratio: f(number(0.1, 64), '4.0'),
    ram_allocation_ratio: f(number(0.1, 64), '1.0'),
    disk_allocation_ratio: f(number(0.1, 64), '1.0'),
    /** Memory kept back for the host itself, as Nova's option of that name. */
    reserved_host_memory_mb: f(integer(0, 2 ** 31 - 1), '512'),
    libvirt_uri: f(choice(['qemu:///system', 'test:///default'] as const), 'qemu:///system'),
    /** libvirtd's socket; the default is that of qemu:///system. */
    libvirt_socket: f(absPath, '/var/run/libvirt/libvirt-sock'),
    /** Seconds to wait for the L2 agent to bind a new instance's ports (then ERROR). */
    vif_plugging_timeout: f(number(0, 3600), '300'),
    /** Seconds a guest gets to shut down on os-stop before it is powered off. */
    shutdown_timeout: f(number(0, 3600), '60'),
    /**
     * kumo-api: seconds a deleted server stays soft-deleted (restorable) before it is
     * reclaimed; 0 (Nova's default): a DELETE deletes at once.
     */
    reclaim_instance_interval: f(integer(0, 2 ** 31 - 1), '0'),
    /** kumo-api's URL, for image downloads (with [api] service_token). */
    api_url: f(httpUrl, 'http://127.0.0.1:9696'),
    /** Attach a config drive to every instance, asked for or not (as Nova). */
    force_config_drive: f(boolean, 'false'),
    /**
     * This host's iSCSI initiator name, which a volume's target admits while attached
     * here; `iqn.2010-10.org.kumo:<host>` when absent.
     */
    iscsi_initiator_name: f(
      pattern(
        /^iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9][a-z0-9.-]{0,100}(:[A-Za-z0-9.:_-]{1,100})?$/,
        'an iSCSI qualified name',
      ),
    ),
  },
} satisfies Record<string, Record<string, Field<unknown>>>;

/** Every key by section: what etc/kumo.conf.sample must document. */
export const CONFIG_KEYS: Record<string, string[]> = Object.fromEntries(
  Object.entries(SPEC).map(([section, fields]) => [section, Object.keys(fields)]),
);

type Spec = typeof SPEC;
type Section<S extends keyof Spec> = {
  [K in keyof Spec[S]]: Spec[S][K] extends Field<infer T> ? T : never;
};
/** Values of keys without a default are `undefined` when absent; users check them. */
export type KumoConfig = { [S in keyof Spec]: Partial<Section<S>> & OnlyDefaulted<S> } & {
  path: string;
  DEFAULT: { host: string };
};
type Defaulted<S extends keyof Spec> = {
  [K in keyof Spec[S]]: Spec[S][K] extends { default: string } ? K : never;
}[keyof Spec[S]];
type OnlyDefaulted<S extends keyof Spec> = { [K in Defaulted<S>]: Section<S>[K] };

function compileSection(
  name: string,
  fields: Record<string, Field<unknown>>,
  raw: Record<string, unknown>,
): Record<string, unknown> {
  for (const key of Object.keys(raw)) {
    if (!(key in fields)) throw new ConfigError(`[${name}] ${key}: unknown key`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(fields)) {
    // The ini parser turns the words true and false into booleans; keep them as text.
    const given = typeof raw[key] === 'boolean' ? String(raw[key]) : raw[key];
    if (given !== undefined && typeof given !== 'string') {
      throw new ConfigError(`[${name}] ${key}: must be a single value`);
    }
    const value = given ?? field.default;
    if (value === undefined) continue;
    try {
      out[key] = field.parse(value.trim());
    } catch (e) {
      throw new ConfigError(
        `[${name}] ${key}: ${(e as Error).message} (got ${JSON.stringify(value)})`,
      );
    }
  }
  return out;
}

/** Compiles INI text; `path` is only used in messages and kept for operators. */
export function compileConfig(text: string, path = '<string>'): KumoConfig {
  const parsed = parseIni(text) as Record<string, unknown>;
  const sections: Record<string, Record<string, unknown>> = { DEFAULT: {} };
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      sections[key] = value as Record<string, unknown>;
    } else {
      (sections.DEFAULT as Record<string, unknown>)[key] = value;
    }
  }
  const out: Record<string, unknown> = { path };
  for (const name of Object.keys(sections)) {
    if (!(name in SPEC)) throw new ConfigError(`[${name}]: unknown section`);
  }
  for (const [name, fields] of Object.entries(SPEC)) {
    out[name] = compileSection(name, fields, sections[name] ?? {});
  }
  const defaults = out.DEFAULT as Record<string, unknown>;
  defaults.host ??= osHostname().split('.')[0] || 'localhost';
  return out as KumoConfig;
}

export const DEFAULT_CONFIG_PATH = '/etc/kumo/kumo.conf';

export function loadConfig(path: string): KumoConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(
      `cannot read config file ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`,
    );
  }
  return compileConfig(text, path);
}

/** A key without a default that a daemon cannot run without, and what it is for. */
export type RequiredKey = {
  [S in keyof Spec]: { section: S; key: keyof Spec[S] & string; why: string };
}[keyof Spec];

/**
 * What each daemon (by binary name) requires, from every `required(` use in the tree. A
 * key needed only when another key is set would carry that condition; none is today.
 */
export const REQUIRED_KEYS: Readonly<Record<string, readonly RequiredKey[]>> = {
  'kumo-api': [{ section: 'api', key: 'admin_token', why: 'the admin token of the API' }],
  'kumo-compute-agent': [
    { section: 'api', key: 'service_token', why: 'to download images from kumo-api' },
  ],
  'kumo-ovs-agent': [],
  'kumo-dhcp-agent': [],
  'kumo-l3-agent': [],
  'kumo-lbaas-agent': [],
  'kumo-volume-agent': [],
};

/** Throws a ConfigError naming the first key `daemon` requires that `config` lacks. */
export function checkRequired(config: KumoConfig, daemon: string): void {
  const keys = REQUIRED_KEYS[daemon];
  if (!keys) throw new Error(`${daemon} has no list of required config keys in core/config.ts`);
  for (const { section, key, why } of keys) {
    if ((config[section] as Record<string, unknown>)[key] === undefined) {
      throw new ConfigError(`[${section}] ${key}: is required (${why})`);
    }
  }
}

/** Requires a key that has no default; the error names it. */
export function required<T>(value: T | undefined, section: string, key: string): T {
  if (value === undefined) throw new ConfigError(`[${section}] ${key}: is required`);
  return value;
}
