/**
 * Nova's server IPs: GET /servers/{id}/ips → `{"addresses": {label: [{version, addr}]}}`
 * and /servers/{id}/ips/{label} → `{label: [...]}` (nova's ips.py, views/addresses.py
 * without the extension keys).
 *
 * Invariant: the addresses are the detailed view's (the instance's own ports, NIC order);
 * a label the server has no address on is Nova's 404 "Instance is not a member of
 * specified network".
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../contracts/errors.ts';
import type { AppDeps } from '../deps.ts';
import { loadInstance } from './server-actions.ts';
import { addressesOf, plainAddresses } from './server-views.ts';

type ById = FastifyRequest<{ Params: { id: string } }>;
type ByLabel = FastifyRequest<{ Params: { id: string; label: string } }>;

async function addressesFor(deps: AppDeps, req: FastifyRequest, id: string) {
  const inst = await loadInstance(deps, req, id);
  return plainAddresses((await addressesOf(deps, [inst])).get(inst.id) ?? {});
}

export function serverIpRoutes(scope: FastifyInstance, deps: AppDeps) {
  scope.get('/servers/:id/ips', async (req: ById) => ({
    addresses: await addressesFor(deps, req, req.params.id),
  }));
  scope.get('/servers/:id/ips/:label', async (req: ByLabel) => {
    const addresses = await addressesFor(deps, req, req.params.id);
    const { label } = req.params;
    if (!Object.hasOwn(addresses, label))
      throw new ApiError('NotFound', 'Instance is not a member of specified network');
    return { [label]: addresses[label] };
  });
}
