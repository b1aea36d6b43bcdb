#!/usr/bin/env node
// Verifies one sigstore bundle with sigstore-js, offline, as an independent check of
// sifmount's own verdicts (see docs/TESTING.md and tests/library/cosign_oracle.rs).
//
//   node verify.js --root TRUSTED_ROOT.json --bundle BUNDLE.json
//                  [--artifact FILE] [--key PUBLIC_KEY.pem]
//                  [--identity SAN --issuer OIDC_ISSUER]
//
// Prints "verified" and exits 0, or "failed: <reason>" and exits 1. Exits 2 when it
// cannot run (bad arguments, unreadable files).
'use strict';

const fs = require('fs');
const crypto = require('crypto');
const { bundleFromJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

function parseArgs(argv) {
  const known = ['--root', '--bundle', '--artifact', '--key', '--identity', '--issuer'];
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!known.includes(argv[i]) || i + 1 >= argv.length) {
      throw new Error(`unexpected argument ${argv[i]}`);
    }
    args[argv[i].slice(2)] = argv[i + 1];
  }
  if (!args.root || !args.bundle) throw new Error('--root and --bundle are required');
  if (!!args.identity !== !!args.issuer) throw new Error('--identity needs --issuer');
  return args;
}

let args, verifier, entity, policy;
try {
  args = parseArgs(process.argv.slice(2));
  const root = TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(args.root, 'utf8')));
  let keys;
  if (args.key) {
    const publicKey = crypto.createPublicKey(fs.readFileSync(args.key));
    keys = () => ({ publicKey, validFor: () => true });
  }
  verifier = new Verifier(toTrustMaterial(root, keys));
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(args.bundle, 'utf8')));
  const artifact = args.artifact ? fs.readFileSync(args.artifact) : undefined;
  entity = toSignedEntity(bundle, artifact);
  policy = {};
  if (args.identity) {
    policy = { subjectAlternativeName: args.identity, extensions: { issuer: args.issuer } };
  }
} catch (e) {
  console.error(`verify.js: ${e.message}`);
  process.exit(2);
}

try {
  verifier.verify(entity, policy);
  console.log('verified');
} catch (e) {
  console.log(`failed: ${e.code ? e.code + ': ' : ''}${e.message}`);
  process.exit(1);
}
