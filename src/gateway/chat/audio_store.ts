// Transcripts of spoken replies by audio id, so a later turn can reference an earlier reply as
// `{role: "assistant", audio: {id}}` (OpenAI's multi-turn audio) until `expires_at`. Bounded:
// the oldest entries go first when full; nothing else of the reply is kept.
export const AUDIO_TTL_SECONDS = 3600;
const MAX_ENTRIES = 10_000;

export class AudioTranscriptStore {
  private readonly entries = new Map<string, { transcript: string; expiresAt: number }>();

  constructor(private readonly now: () => number = () => Math.floor(Date.now() / 1000)) {}

  /** Expiry (unix seconds) of audio made now. */
  expiryFromNow(): number {
    return this.now() + AUDIO_TTL_SECONDS;
  }

  /** Records a reply's transcript until `expiresAt` (unix seconds). */
  put(id: string, transcript: string, expiresAt: number): void {
    this.entries.delete(id);
    this.entries.set(id, { transcript, expiresAt });
    while (this.entries.size > MAX_ENTRIES) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  get(id: string): string | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    if (e.expiresAt <= this.now()) {
      this.entries.delete(id);
      return undefined;
    }
    return e.transcript;
  }
}
