/**
 * What the plugin needs from the engine and the namespace module, as one small interface, so
 * the plugin's decisions can be unit-tested without root. The real one is the engine itself.
 */
import { applyQos, removeNodeShaping, removeQos, type ApplyResult, type EngineOptions, type HostSide, type RemoveResult } from '../engine.js';
import type { QosSpec } from '../domain/spec.js';
import { assertNotHost, netnsIdentity, netnsPath, type NetnsRef } from '../kernel/netns.js';

export interface PodEngine {
  apply(ref: NetnsRef, spec: QosSpec, opts: EngineOptions): Promise<ApplyResult>;
  remove(ref: NetnsRef, opts: EngineOptions): Promise<RemoveResult>;
  /** vethShaping "host": the node's objects of a pod whose namespace is gone */
  removeNode?(hostSide: HostSide, opts: EngineOptions): Promise<RemoveResult>;
  /** dev:inode of the namespace, undefined when it no longer exists */
  identity(ref: NetnsRef): string | undefined;
  /** throws HOST_NETNS for the node's own namespace, NOT_FOUND when there is none */
  assertNotHost(ref: NetnsRef): void;
}

export const realEngine: PodEngine = {
  apply: applyQos,
  remove: removeQos,
  removeNode: removeNodeShaping,
  identity: (ref) => netnsIdentity(netnsPath(ref)),
  assertNotHost,
};
