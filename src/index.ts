/**
 * Waystation's public library surface. Everything not exported here is internal.
 */
export * from './errors.js';
export * from './log/index.js';
