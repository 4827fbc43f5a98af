import { Readable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { findMessageId, scanMessage, type ScannedMessage } from '../../src/testing/message.js';

function scan(chunks: string[]): Promise<ScannedMessage> {
  return new Promise((resolve, reject) => {
    scanMessage(Readable.from(chunks.map((chunk) => Buffer.from(chunk, 'latin1'))), (err, message) => (err || !message ? reject(err) : resolve(message)));
  });
}

describe('findMessageId', () => {
  test('finds the header whatever its case, and unfolds it', () => {
    expect(findMessageId('Subject: x\r\nMESSAGE-id:  <a@b>\r\nTo: y')).toBe('<a@b>');
    expect(findMessageId('Message-ID:\r\n <folded@b>\r\nTo: y')).toBe('<folded@b>');
    expect(findMessageId('X-Message-ID: <not@this>\r\nSubject: x')).toBeUndefined();
    expect(findMessageId('Subject: x')).toBeUndefined();
  });
});

describe('scanMessage', () => {
  test('reads the whole stream, counts its bytes and takes the Message-ID from the header block', async () => {
    const message = ['From: a@b\r\nMessage-', 'ID: <split@x>\r', '\n\r', '\nbody\r\nMessage-ID: <body@x>\r\n'];
    expect(await scan(message)).toEqual({ size: message.join('').length, messageId: '<split@x>' });
  });

  test('ignores a Message-ID line in the body', async () => {
    expect(await scan(['From: a@b\r\n\r\nMessage-ID: <body@x>\r\n'])).toEqual({ size: 35, messageId: undefined });
  });

  test('handles a message that is all headers', async () => {
    expect((await scan(['Message-ID: <only@x>'])).messageId).toBe('<only@x>');
  });
});
