/** How V8 profiles (CPU and sampling heap) are read by the A/B scripts: one area and one name per call frame. */

/**
 * The part of the process a frame belongs to: V8's own entries by their name ("(garbage
 * collector)", "(idle)"), nodemailer, mailpacer (a build in dist/ or a copy of one in .tmp/, or the
 * sources), a Node module, or native code.
 */
export function area(url: string, name: string): string {
  if (name.startsWith('(')) return name;
  if (url.includes('nodemailer')) return 'nodemailer';
  if (/\/(dist|src)\/|\/\.tmp\//.test(url)) return 'mailpacer';
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  return url === '' ? 'native' : 'other';
}

/** A frame's function, its file from node_modules/, dist…/ or src/ on, and its line (0-based, as V8 gives it). */
export function functionKey(callFrame: { functionName: string; url: string; lineNumber: number }): string {
  return `${callFrame.functionName || '(anonymous)'} ${callFrame.url.replace(/.*\/(node_modules|dist\w*|src)\//, '$1/')}:${callFrame.lineNumber}`;
}
