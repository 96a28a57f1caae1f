/**
 * bench/scale's issue setup: three RabbitMQ nodes and two kumo-api replicas behind HAProxy.
 */
import type { Stack, StackOptions } from './scale-stack.ts';

export async function clusterStack(_o: StackOptions): Promise<Stack> {
  throw new Error('the cluster stack needs test/helpers/rabbit-cluster.ts and api-replicas.ts');
}
