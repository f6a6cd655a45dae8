/**
 * Topic aliases the broker sends to one MQTT 5 client (MQTT 5.0 §3.3.2.3.4). A mapping lives as
 * long as the network connection [MQTT-3.3.2-7] (a new connection starts with none, so a resent
 * PUBLISH carries its topic again); aliases never exceed the client's Topic Alias Maximum
 * [MQTT-3.1.2-26], and a client announcing none gets none [MQTT-3.1.2-27].
 *
 * Policy: the first `maximum` distinct topics sent get an alias for the connection's life; the
 * first PUBLISH on a topic carries topic and alias, later ones the alias and an empty topic.
 * Topics beyond the maximum go out with their name. A mapping is never reassigned, so a client
 * never has to tell which topic an alias meant at which moment.
 */
import type { IPublishPacket } from 'mqtt-packet';

export class OutgoingTopicAliases {
  private readonly byTopic = new Map<string, number>();

  constructor(private readonly maximum: number) {}

  /** The packet to write instead of `packet` (never modified: the session may resend it elsewhere). */
  apply(packet: IPublishPacket): IPublishPacket {
    const known = this.byTopic.get(packet.topic);
    if (known !== undefined)
      return { ...packet, topic: '', properties: { ...packet.properties, topicAlias: known } };
    if (this.byTopic.size >= this.maximum) return packet;
    const alias = this.byTopic.size + 1;
    this.byTopic.set(packet.topic, alias);
    return { ...packet, properties: { ...packet.properties, topicAlias: alias } };
  }

  /**
   * `written` (from apply) was not sent after all (too large for the client, not encodable):
   * an alias it introduced is withdrawn, as the client never learnt it.
   */
  unsent(written: IPublishPacket): void {
    const alias = written.properties?.topicAlias;
    // Only the last apply() can be undone, and it introduced an alias when it kept the topic.
    if (alias !== undefined && written.topic !== '' && alias === this.byTopic.size)
      this.byTopic.delete(written.topic);
  }
}
