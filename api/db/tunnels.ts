/**
 * The tunnel_endpoints table (Neutron's ml2_*_endpoints): one tunnel endpoint per L2
 * agent host.
 *
 * Invariant: a host has at most one endpoint (primary key host); `types` is stored
 * sorted and comma-joined, so an unchanged endpoint compares equal and is not rewritten.
 */
import type { TunnelPeer } from '../../contracts/l2.ts';
import type { Db } from './index.ts';

/** Records the host's endpoint; false when it was already recorded as is. */
export async function upsertEndpoint(
  db: Db,
  host: string,
  ip: string,
  types: readonly string[],
): Promise<boolean> {
  const joined = [...types].sort().join(',');
  return db.transaction(async (tx) => {
    const [old] = await tx.query<{ ip: string; types: string }>(
      'SELECT ip, types FROM tunnel_endpoints WHERE host = ?',
      [host],
    );
    if (old && old.ip === ip && old.types === joined) return false;
    await tx.query(
      'INSERT INTO tunnel_endpoints (host, ip, types) VALUES (?, ?, ?) ON CONFLICT (host) DO UPDATE SET ip = excluded.ip, types = excluded.types',
      [host, ip, joined],
    );
    return true;
  });
}

/** Every endpoint but the host's own, by host name. */
export async function peersOf(db: Db, host: string): Promise<TunnelPeer[]> {
  const rows = await db.query<{ host: string; ip: string; types: string }>(
    'SELECT host, ip, types FROM tunnel_endpoints WHERE host <> ? ORDER BY host',
    [host],
  );
  return rows.map((r) => ({
    host: r.host,
    tunnel_ip: r.ip,
    tunnel_types: (r.types === '' ? [] : r.types.split(',')) as TunnelPeer['tunnel_types'],
  }));
}

/** Deletes the host's endpoint; false when it had none. */
export async function deleteEndpoint(db: Db, host: string): Promise<boolean> {
  const gone = await db.query('DELETE FROM tunnel_endpoints WHERE host = ? RETURNING host', [host]);
  return gone.length > 0;
}
