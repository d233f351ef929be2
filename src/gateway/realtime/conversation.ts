// The conversation of a realtime session: items in order, addressed by id, with the insert,
// delete and lookup rules of the protocol. Bounded: a session holds at most `maxItems` items.
import { ProtocolError, type ConversationItem } from './model.js';

export const DEFAULT_MAX_ITEMS = 1000;

export class Conversation {
  private readonly items: ConversationItem[] = [];

  constructor(private readonly maxItems = DEFAULT_MAX_ITEMS) {}

  get size(): number {
    return this.items.length;
  }

  all(): readonly ConversationItem[] {
    return this.items;
  }

  get(id: string): ConversationItem | undefined {
    return this.items.find((i) => i.id === id);
  }

  /** Id of the last item, or null when empty. */
  lastId(): string | null {
    return this.items.at(-1)?.id ?? null;
  }

  /** Id of the item before `id` (null when first). */
  previousOf(id: string): string | null {
    const i = this.items.findIndex((x) => x.id === id);
    return i > 0 ? this.items[i - 1]!.id : null;
  }

  /**
   * Inserts after `previousItemId` ('root' or null at the start when given explicitly; undefined
   * appends). Returns the id the item follows. Errors: duplicate id, unknown previous id, full.
   */
  insert(item: ConversationItem, previousItemId?: string | null): string | null {
    if (this.items.length >= this.maxItems) {
      throw new ProtocolError('conversation_full', `the conversation holds its maximum of ${this.maxItems} items; delete some first`, 'item');
    }
    if (this.get(item.id)) throw new ProtocolError('invalid_value', `an item with id '${item.id}' already exists`, 'item.id');
    if (previousItemId === undefined) {
      const prev = this.lastId();
      this.items.push(item);
      return prev;
    }
    if (previousItemId === null || previousItemId === 'root') {
      this.items.unshift(item);
      return null;
    }
    const at = this.items.findIndex((x) => x.id === previousItemId);
    if (at < 0) throw new ProtocolError('invalid_value', `previous_item_id '${previousItemId}' does not exist in the conversation`, 'previous_item_id');
    this.items.splice(at + 1, 0, item);
    return previousItemId;
  }

  delete(id: string): void {
    const at = this.items.findIndex((x) => x.id === id);
    if (at < 0) throw new ProtocolError('invalid_value', `item '${id}' does not exist in the conversation`, 'item_id');
    this.items.splice(at, 1);
  }

  /** A function_call item with this call id, if any. */
  findCall(callId: string): ConversationItem | undefined {
    return this.items.find((i) => i.type === 'function_call' && i.callId === callId);
  }
}
