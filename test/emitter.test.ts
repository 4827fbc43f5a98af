import { describe, expect, it } from 'vitest';
import { createEmitter } from '../src/emitter.js';
import type { ErrorEvent, ThrottleEvent } from '../src/events.js';

const throttle = (lane: string): ThrottleEvent => ({
  provider: 'p',
  lane,
  action: 'slow-down',
  decision: 'rate-limited',
  responseCode: 421,
  response: '421 4.7.0 Try again later',
  rate: 5,
  connections: 2,
  pausedUntil: 0,
});

describe('the mailer events', () => {
  it('calls the hook and every listener with the same event, and stops calling a listener removed either way', () => {
    const seen: string[] = [];
    const emitter = createEmitter({ onThrottle: (e) => void seen.push(`hook ${e.lane}`) });
    const a = (e: ThrottleEvent) => void seen.push(`a ${e.lane}`);
    const b = (e: ThrottleEvent) => void seen.push(`b ${e.lane}`);
    const offA = emitter.on('throttle', a);
    emitter.on('throttle', b);
    emitter.emit('throttle', throttle('1'));
    offA();
    emitter.emit('throttle', throttle('2'));
    emitter.off('throttle', b);
    emitter.emit('throttle', throttle('3'));
    expect(seen).toEqual(['hook 1', 'a 1', 'b 1', 'hook 2', 'b 2', 'hook 3']);
    expect(emitter.wants('throttle')).toBe(true); // the hook still listens
    expect(emitter.wants('sent')).toBe(false);
  });

  it('calls a once() listener once, and removes it by the function once() returned or by reference with off()', () => {
    const emitter = createEmitter({});
    const seen: string[] = [];
    const first = (e: ThrottleEvent) => void seen.push(`first ${e.lane}`);
    const byReturn = (e: ThrottleEvent) => void seen.push(`byReturn ${e.lane}`);
    const byReference = (e: ThrottleEvent) => void seen.push(`byReference ${e.lane}`);
    emitter.once('throttle', first);
    const cancel = emitter.once('throttle', byReturn);
    emitter.once('throttle', byReference);
    cancel();
    emitter.off('throttle', byReference);
    emitter.emit('throttle', throttle('1'));
    emitter.emit('throttle', throttle('2'));
    expect(seen).toEqual(['first 1']);
    expect(emitter.wants('throttle')).toBe(false);
  });

  it('reports a listener or hook that throws or rejects as an error event, and goes on calling the others', async () => {
    const errors: ErrorEvent[] = [];
    const emitter = createEmitter({
      onThrottle: () => {
        throw new Error('hook broke');
      },
      onError: (e) => void errors.push(e),
    });
    let after = 0;
    emitter.on('throttle', () => Promise.reject(new Error('async listener broke')));
    emitter.on('throttle', () => void after++);
    emitter.emit('throttle', throttle('1'));
    expect(after).toBe(1);
    await Promise.resolve();
    expect(errors.map((e) => [e.source, e.error.message])).toEqual([
      ['hook:onThrottle', 'hook broke'],
      ['listener:throttle', 'async listener broke'],
    ]);
  });
});
