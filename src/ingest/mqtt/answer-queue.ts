/**
 * Answers to a client's packets (PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK) in the order the
 * packets arrived [MQTT-4.6.0-2], even when storing one publish takes longer than handling the
 * next packet. One plain queue instead of a promise chain per packet: publishes arrive by the
 * thousand per second.
 */
interface Entry {
  code: number | undefined;
  send: (code: number) => void;
}

export class AnswerQueue {
  private entries: Entry[] = [];
  private head = 0;

  /** An answer that can leave as soon as those before it have. */
  now(send: (code: number) => void, code = 0): void {
    this.entries.push({ code, send });
    this.flush();
  }

  /** An answer that waits for its outcome: call the returned function with the reason code. */
  later(send: (code: number) => void): (code: number) => void {
    const entry: Entry = { code: undefined, send };
    this.entries.push(entry);
    return (code) => {
      entry.code = code;
      this.flush();
    };
  }

  private flush(): void {
    while (this.head < this.entries.length) {
      const e = this.entries[this.head]!;
      if (e.code === undefined) break;
      this.head++;
      e.send(e.code);
    }
    if (this.head === this.entries.length) {
      this.entries = [];
      this.head = 0;
    } else if (this.head > 1024) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}
