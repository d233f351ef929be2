// Stop sequences over streamed text: text that could still be the start of a stop sequence is
// held back until the next delta decides, so a stream never shows a stop sequence or part of it;
// on a match everything from the sequence on is dropped (OpenAI: the stop text is not returned).
export class StopMatcher {
  private held = '';
  private readonly longest: number;

  constructor(private readonly sequences: readonly string[]) {
    this.longest = Math.max(0, ...sequences.map((s) => s.length));
  }

  /** Text safe to emit now, and whether a stop sequence was reached. */
  push(delta: string): { text: string; stopped: boolean } {
    if (this.sequences.length === 0) return { text: delta, stopped: false };
    const all = this.held + delta;
    let cut = -1;
    for (const s of this.sequences) {
      const at = all.indexOf(s);
      if (at !== -1 && (cut === -1 || at < cut)) cut = at;
    }
    if (cut !== -1) {
      this.held = '';
      return { text: all.slice(0, cut), stopped: true };
    }
    // Hold the longest tail that is a prefix of some sequence.
    let keep = 0;
    for (let n = Math.min(this.longest - 1, all.length); n > 0; n--) {
      const tail = all.slice(all.length - n);
      if (this.sequences.some((s) => s.startsWith(tail))) {
        keep = n;
        break;
      }
    }
    this.held = all.slice(all.length - keep);
    return { text: all.slice(0, all.length - keep), stopped: false };
  }

  /** The held-back text once the reply has ended without a match. */
  flush(): string {
    const rest = this.held;
    this.held = '';
    return rest;
  }
}
