import { describe, expect, it } from 'vitest';
import { checkColumns, parseTemplate, placeholders, render, TemplateError } from '../../src/cli/template.js';

describe('parseTemplate', () => {
  it('takes a first "Subject:" line as the subject, and drops the blank line after it', () => {
    expect(parseTemplate('Subject: Hello {{name}}\n\nDear {{name}},\n', { html: false })).toEqual({ subject: 'Hello {{name}}', body: 'Dear {{name}},\n', html: false });
  });

  it('reads the subject line whatever its case and line ending', () => {
    expect(parseTemplate('subject:Hi\r\nBody', { html: true })).toEqual({ subject: 'Hi', body: 'Body', html: true });
  });

  it('has no subject when the first line is not one', () => {
    expect(parseTemplate('Dear {{name}},\nSubject: not a header here\n', { html: false })).toEqual({ subject: undefined, body: 'Dear {{name}},\nSubject: not a header here\n', html: false });
  });
});

describe('render', () => {
  it('fills every {{field}}, spaces inside the braces allowed', () => {
    expect(render('Hi {{name}}, your plan is {{ plan }}. Bye {{name}}.', { name: 'Ann', plan: 'gold' }, { row: 1 })).toBe('Hi Ann, your plan is gold. Bye Ann.');
  });

  it('fills an empty field with nothing', () => {
    expect(render('[{{note}}]', { note: '' }, { row: 1 })).toBe('[]');
  });

  it('names the field and the row of a missing field', () => {
    const attempt = () => render('Hi {{first_name}}', { email: 'a@x.org' }, { row: 3, line: 4 });
    expect(attempt).toThrow(TemplateError);
    expect(attempt).toThrow('row 3 (line 4): missing field "first_name" (used as {{first_name}} in the template)');
  });

  it('does not take inherited properties for fields', () => {
    expect(() => render('{{constructor}}', {}, { row: 1 })).toThrow('missing field "constructor"');
  });

  it('escapes values in an HTML template, so a row cannot inject markup', () => {
    expect(render('<p>{{name}}</p>', { name: '<script>"x" & \'y\'</script>' }, { row: 1 }, { html: true })).toBe('<p>&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;</p>');
  });

  it('leaves values as they are in a text template', () => {
    expect(render('{{name}}', { name: '<b>&' }, { row: 1 })).toBe('<b>&');
  });
});

describe('placeholders and checkColumns', () => {
  it('lists the fields a template uses, once each', () => {
    expect(placeholders('{{a}} {{ b }} {{a}}')).toEqual(['a', 'b']);
  });

  it('accepts templates whose fields are all columns', () => {
    expect(() => checkColumns(['Hi {{name}}', '{{plan}}'], ['email', 'name', 'plan'])).not.toThrow();
  });

  it('names a field that is no column of the list', () => {
    expect(() => checkColumns(['Hi {{name}}', '{{plan}}'], ['email', 'name'])).toThrow('the template uses {{plan}}, but the list has no "plan" column (columns: email, name)');
  });
});
