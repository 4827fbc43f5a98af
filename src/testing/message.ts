import type { Readable } from 'node:stream';

/** What the server keeps of a message: its size and its Message-ID. */
export interface ScannedMessage {
  size: number;
  messageId: string | undefined;
}

/** Headers larger than this are not searched further; real ones are a few KB. */
const MAX_HEADER_BYTES = 64 * 1024;

const MESSAGE_ID = /^message-id[ \t]*:[ \t]*(.*(?:\r?\n[ \t].*)*)/im;

/**
 * Reads a message stream to its end (smtp-server answers only then), keeping only the
 * header block for the Message-ID and counting the rest. The body is never copied.
 */
export function scanMessage(stream: Readable, done: (err: Error | null, message?: ScannedMessage) => void): void {
  let size = 0;
  let head: Buffer | undefined;
  let headerText: string | undefined;
  let finished = false;
  const finish = (err: Error | null): void => {
    if (finished) return;
    finished = true;
    if (err) return done(err);
    const text = headerText ?? head?.toString('latin1') ?? '';
    done(null, { size, messageId: findMessageId(text) });
  };

  stream.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (headerText !== undefined) return;
    const from = head ? Math.max(0, head.length - 3) : 0;
    head = head ? Buffer.concat([head, chunk]) : chunk;
    const end = headerEnd(head, from);
    if (end >= 0) headerText = head.toString('latin1', 0, end);
    else if (head.length >= MAX_HEADER_BYTES) headerText = head.toString('latin1', 0, MAX_HEADER_BYTES);
    if (headerText !== undefined) head = undefined;
  });
  stream.once('end', () => finish(null));
  stream.once('error', (err) => finish(err));
}

/** Offset of the blank line that ends the header block, or -1. */
function headerEnd(buffer: Buffer, from: number): number {
  const crlf = buffer.indexOf('\r\n\r\n', from, 'latin1');
  const lf = buffer.indexOf('\n\n', from, 'latin1');
  if (crlf < 0) return lf;
  if (lf < 0) return crlf;
  return Math.min(crlf, lf);
}

/** The unfolded, trimmed value of the Message-ID header, or `undefined`. */
export function findMessageId(headers: string): string | undefined {
  const match = MESSAGE_ID.exec(headers);
  if (!match) return undefined;
  const value = (match[1] ?? '').replace(/\r?\n[ \t]+/g, ' ').trim();
  return value === '' ? undefined : value;
}
