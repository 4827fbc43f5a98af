#!/usr/bin/env node
// The `mailpacer` command. Subcommands arrive with the CLI issue; for now it says what it is.
console.log('mailpacer: see https://www.npmjs.com/package/mailpacer');
