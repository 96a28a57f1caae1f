/**
 * What a libvirt domain state means to the compute agent. Pure.
 *
 * Invariant: a domain counts as active (its guest holds its resources and its taps
 * exist) in every state but shut off, crashed and no state: paused, suspended by the
 * hypervisor and shutting down are all still active.
 */
import { DomainState } from '../../host/libvirt/enums.ts';

export const isActive = (d: { state: number } | null) =>
  d !== null &&
  d.state !== DomainState.SHUTOFF &&
  d.state !== DomainState.CRASHED &&
  d.state !== DomainState.NOSTATE;
