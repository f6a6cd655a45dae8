/**
 * The broker's subscription index: a topic tree with one node per filter level, so finding the
 * subscriptions a topic matches costs O(levels + matches), not O(sessions).
 *
 * A filter `a/+/c` is the path root → `a` → `+` → `c`; the subscriptions ending there hang on
 * that node (ordinary ones by session, shared ones by group). A topic `a/b/c` walks, at each
 * level, the literal child, the `+` child and the `#` child (which matches the rest, also none:
 * `a/#` matches `a` [MQTT-4.7.1-2]). At the first level a topic starting with "$" takes no
 * wildcard child [MQTT-4.7.2-1]. Topic names hold no wildcards, so a literal level never meets
 * the `+` or `#` keys. A node's maps are created when first needed and a node left empty is
 * removed, so the tree holds exactly the current subscriptions' paths.
 */
import type { Session, Subscription } from './session.js';

/** The members of one shared subscription (`$share/<group>/<filter>`), in subscription order. */
export interface SharedGroup {
  readonly members: Map<Session, Subscription>;
  /** Round-robin position: messages handed to this group so far. */
  turn: number;
}

interface TopicNode {
  children?: Map<string, TopicNode>;
  /** Ordinary subscriptions whose filter ends here; a session has at most one per filter. */
  subscribers?: Map<Session, Subscription>;
  groups?: Map<string, SharedGroup>;
}

export interface IndexVisitor {
  subscriber(session: Session, sub: Subscription): void;
  group(group: SharedGroup): void;
}

export class SubscriptionIndex {
  private readonly root: TopicNode = {};
  private count = 0;

  /** Adds a subscription of the session (a new filter; a repeated SUBSCRIBE updates `sub` in place). */
  add(session: Session, sub: Subscription): void {
    let node = this.root;
    for (const level of sub.match.split('/')) {
      node.children ??= new Map();
      let child = node.children.get(level);
      if (!child) {
        child = {};
        node.children.set(level, child);
      }
      node = child;
    }
    let holders: Map<Session, Subscription>;
    if (sub.shareGroup === undefined) {
      node.subscribers ??= new Map();
      holders = node.subscribers;
    } else {
      node.groups ??= new Map();
      let group = node.groups.get(sub.shareGroup);
      if (!group) {
        group = { members: new Map(), turn: 0 };
        node.groups.set(sub.shareGroup, group);
      }
      holders = group.members;
    }
    if (!holders.has(session)) this.count++;
    holders.set(session, sub);
  }

  /** Removes a subscription of the session; nodes left empty are pruned. */
  remove(session: Session, sub: Subscription): void {
    const path: { parent: TopicNode; level: string; node: TopicNode }[] = [];
    let node = this.root;
    for (const level of sub.match.split('/')) {
      const child = node.children?.get(level);
      if (!child) return;
      path.push({ parent: node, level, node: child });
      node = child;
    }
    if (sub.shareGroup === undefined) {
      if (node.subscribers?.delete(session)) this.count--;
    } else {
      const group = node.groups?.get(sub.shareGroup);
      if (group?.members.delete(session)) this.count--;
      if (group?.members.size === 0) node.groups!.delete(sub.shareGroup);
    }
    for (let i = path.length - 1; i >= 0; i--) {
      const { parent, level, node: n } = path[i]!;
      if (n.children?.size || n.subscribers?.size || n.groups?.size) break;
      parent.children!.delete(level);
    }
  }

  /** Removes every subscription of the session (before it is discarded). */
  removeSession(session: Session): void {
    for (const sub of session.subscriptions.values()) this.remove(session, sub);
  }

  /**
   * Calls the visitor for each ordinary subscription and each shared group whose filter matches
   * `topic`. A loop over pending nodes rather than recursion: a topic may have thousands of levels.
   */
  match(topic: string, visitor: IndexVisitor): void {
    const levels = topic.split('/');
    // No wildcard at the first level matches a topic starting with "$" [MQTT-4.7.2-1].
    const dollar = topic.startsWith('$');
    const pending: { node: TopicNode; depth: number }[] = [{ node: this.root, depth: 0 }];
    for (let next = pending.pop(); next; next = pending.pop()) {
      const { node, depth } = next;
      const children = node.children;
      if (depth === levels.length) {
        visit(node, visitor);
        const hash = children?.get('#');
        if (hash) visit(hash, visitor);
        continue;
      }
      if (!children) continue;
      if (depth > 0 || !dollar) {
        const hash = children.get('#');
        if (hash) visit(hash, visitor);
        const plus = children.get('+');
        if (plus) pending.push({ node: plus, depth: depth + 1 });
      }
      const literal = children.get(levels[depth]!);
      if (literal) pending.push({ node: literal, depth: depth + 1 });
    }
  }

  /** How many subscriptions the tree holds. */
  get size(): number {
    return this.count;
  }

  /** Whether the tree holds nothing: every subscription removed left no node behind. */
  get empty(): boolean {
    return !this.root.children?.size;
  }
}

function visit(node: TopicNode, visitor: IndexVisitor): void {
  if (node.subscribers) for (const [session, sub] of node.subscribers) visitor.subscriber(session, sub);
  if (node.groups) for (const group of node.groups.values()) visitor.group(group);
}
