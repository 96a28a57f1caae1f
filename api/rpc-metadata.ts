/**
 * The metadata RPC calls: get_metadata_instance (a relay asks which instance has `ip` on
 * a router's networks or on a network) and get_config_drive (a compute agent asks for the
 * files of an instance it runs).
 */
import type { ArgsOf } from '../contracts/messages.ts';
import type { Db } from './db/index.ts';
import type { RpcDeps } from './rpc.ts';

export async function getMetadataInstance(_db: Db, _args: ArgsOf<'get_metadata_instance'>) {
  throw new Error('get_metadata_instance: not built yet (issue 15)');
}

export async function getConfigDrive(_deps: RpcDeps, _args: ArgsOf<'get_config_drive'>) {
  throw new Error('get_config_drive: not built yet (issue 15)');
}
