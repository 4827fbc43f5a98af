import { HOOK_NAMES, type MailerEventName, type MailerEvents, type MailerHooks } from './events.js';

export type Listener<K extends MailerEventName> = (event: MailerEvents[K]) => void;

/** The typed events of a mailer: hooks from the options and `on()` listeners receive the same object. */
export interface MailerEmitter {
  on<K extends MailerEventName>(name: K, listener: Listener<K>): () => void;
  off<K extends MailerEventName>(name: K, listener: Listener<K>): void;
  once<K extends MailerEventName>(name: K, listener: Listener<K>): () => void;
}

export interface InternalEmitter extends MailerEmitter {
  emit<K extends MailerEventName>(name: K, event: MailerEvents[K]): void;
  /** Whether anyone listens, so that events nobody reads are not built. */
  wants(name: MailerEventName): boolean;
}

export function createEmitter(hooks: MailerHooks): InternalEmitter {
  const listeners = new Map<MailerEventName, Set<(event: never) => unknown>>();
  /** The listener each once() wrapper calls, so that off() finds it by the listener. */
  const onceOf = new WeakMap<object, unknown>();
  const set = (name: MailerEventName) => {
    let found = listeners.get(name);
    if (!found) listeners.set(name, (found = new Set()));
    return found;
  };

  // A listener or hook that throws must not break a send: it is reported as an `error` event.
  const report = (error: unknown, source: string) => {
    const err = error instanceof Error ? error : new Error(String(error));
    if (source !== 'hook:onError' && source !== 'listener:error') emit('error', { error: err, source });
  };

  const call = (fn: (event: never) => unknown, event: unknown, source: string) => {
    try {
      const result = fn(event as never);
      if (result && typeof (result as Promise<unknown>).then === 'function') (result as Promise<unknown>).catch((error) => report(error, source));
    } catch (error) {
      report(error, source);
    }
  };

  function emit<K extends MailerEventName>(name: K, event: MailerEvents[K]): void {
    const hook = hooks[HOOK_NAMES[name]] as ((event: MailerEvents[K]) => unknown) | undefined;
    if (hook) call(hook, event, `hook:${HOOK_NAMES[name]}`);
    for (const listener of [...(listeners.get(name) ?? [])]) call(listener, event, `listener:${name}`);
  }

  return {
    emit,
    wants: (name) => Boolean(hooks[HOOK_NAMES[name]]) || (listeners.get(name)?.size ?? 0) > 0,
    on(name, listener) {
      set(name).add(listener as (event: never) => unknown);
      return () => set(name).delete(listener as (event: never) => unknown);
    },
    off(name, listener) {
      const found = set(name);
      found.delete(listener as (event: never) => unknown);
      // A listener added with once() is held by its wrapper: off() by reference removes that too.
      for (const held of found) if (onceOf.get(held) === listener) found.delete(held);
    },
    once(name, listener) {
      const wrapper = (event: MailerEvents[typeof name]) => {
        set(name).delete(wrapper as (event: never) => unknown);
        listener(event);
      };
      onceOf.set(wrapper, listener);
      set(name).add(wrapper as (event: never) => unknown);
      return () => set(name).delete(wrapper as (event: never) => unknown);
    },
  };
}
