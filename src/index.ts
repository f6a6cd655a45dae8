/**
 * Waystation's public library surface. Everything not exported here is internal.
 */
export type { WaystationConfig, WaystationConfigInput } from './config/schema.js';
export type { Clock, TimerHandle } from './delivery/clock.js';
export type { Receipt } from './delivery/engine.js';
export type { RouteSnapshot } from './delivery/route-runner.js';
export type { RouteState } from './delivery/route-state.js';
export {
  ack,
  type Delivery,
  deliverInOrder,
  nack,
  type Outcome,
  permanentError,
  type Target,
} from './delivery/target.js';
export * from './errors.js';
export * from './log/index.js';
export type { DeadLetter } from './store/dead-letters.js';
export type { PayloadInput } from './store/payload-input.js';
export type { MessageState, RouteCounters } from './store/route-progress.js';
export type { PublishedRef } from './store/stream.js';
export type { ModuleTargetContext, TargetFactory } from './targets/index.js';
export {
  type BatchMessage,
  type MessageStatus,
  type PublishOptions,
  RouteHandle,
  type StreamInfo,
  Waystation,
  type WaystationOptions,
} from './waystation.js';
