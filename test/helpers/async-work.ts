// Counts native async work items (node-addon-api AsyncWorker resources) created while `fn` runs:
// proof that a computation was queued to the libuv pool instead of running on the event loop.
import { createHook } from 'node:async_hooks';

export async function countAsyncWork<T>(resourceType: string, fn: () => Promise<T>): Promise<{ result: T; queued: number }> {
  let queued = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === resourceType) queued++;
    },
  });
  hook.enable();
  try {
    const result = await fn();
    return { result, queued };
  } finally {
    hook.disable();
  }
}
