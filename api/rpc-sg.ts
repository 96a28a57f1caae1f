/**
 * The L2 agent's security_group_info (contracts/l2.ts): the rules of the groups asked
 * about and the members of the groups those rules name as remote_group_id.
 * (Skeleton dispatched from rpc.ts; the sg-rpc branch fills it in.)
 */

import type { SecurityGroupInfoResult } from '../contracts/l2.ts';
import type { ArgsOf } from '../contracts/messages.ts';
import type { Db } from './db/index.ts';

export async function securityGroupInfo(
  _db: Db,
  _args: ArgsOf<'security_group_info'>,
): Promise<SecurityGroupInfoResult> {
  throw new Error('security_group_info is not served yet');
}
