#!/usr/bin/env node
// Compiles the dev chain's contracts with the npm-pinned solc (solcjs) and writes one artifact per
// contract next to the sources. The artifacts are committed, so every consumer (Python fixtures, the
// CLI, CI) runs without a compiler; `--check` proves they still match the sources.
//
//   node contracts_abi/compile.js          write contracts_abi/<Contract>.json
//   node contracts_abi/compile.js --check  exit 1 if a committed artifact differs from a fresh compile
//
// Output is deterministic: sources are keyed by file name (not path), JSON keys are sorted and the
// formatting is fixed, so a recompile of unchanged sources is byte-identical.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const HERE = __dirname;
const SOURCES = { 'StableCoin.sol': ['StableCoin'], 'SmartWallet.sol': ['SmartWallet'] };
const OPTIMIZER_RUNS = 200;

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key]);
    return out;
  }
  return value;
}

function render(artifact) {
  return JSON.stringify(sortKeys(artifact), null, 2) + '\n';
}

function compile() {
  const solc = require('solc');
  const contents = {};
  const input = {
    language: 'Solidity',
    sources: {},
    settings: {
      optimizer: { enabled: true, runs: OPTIMIZER_RUNS },
      outputSelection: {
        '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object', 'storageLayout'] },
      },
    },
  };
  for (const file of Object.keys(SOURCES)) {
    contents[file] = fs.readFileSync(path.join(HERE, file), 'utf8');
    input.sources[file] = { content: contents[file] };
  }
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  // Anything above "info" fails the build: a warning today is a bug report tomorrow.
  const problems = (output.errors || []).filter((e) => e.severity !== 'info');
  if (problems.length > 0) {
    for (const e of problems) console.error(e.formattedMessage);
    console.error(`compile.js: ${problems.length} compiler error(s)/warning(s); nothing written`);
    process.exit(1);
  }
  const artifacts = {};
  for (const [file, names] of Object.entries(SOURCES)) {
    const sourceSha256 = crypto.createHash('sha256').update(contents[file], 'utf8').digest('hex');
    for (const name of names) {
      const c = output.contracts[file][name];
      artifacts[name] = render({
        contractName: name,
        compiler: solc.version(),
        sourceSha256,
        abi: c.abi,
        bytecode: '0x' + c.evm.bytecode.object,
        deployedBytecode: '0x' + c.evm.deployedBytecode.object,
        storageLayout: c.storageLayout,
      });
    }
  }
  return artifacts;
}

function describeDifference(committedText, fresh) {
  let committed;
  try {
    committed = JSON.parse(committedText);
  } catch (err) {
    return 'committed file is not valid JSON';
  }
  const freshObj = JSON.parse(fresh);
  const keys = new Set([...Object.keys(committed), ...Object.keys(freshObj)]);
  const changed = [...keys].sort().filter(
    (k) => JSON.stringify(committed[k]) !== JSON.stringify(freshObj[k]),
  );
  return changed.length ? `fields differ: ${changed.join(', ')}` : 'formatting differs';
}

function main() {
  const check = process.argv.includes('--check');
  const artifacts = compile();
  let stale = 0;
  for (const [name, text] of Object.entries(artifacts)) {
    const target = path.join(HERE, `${name}.json`);
    if (check) {
      if (!fs.existsSync(target)) {
        console.error(`${path.relative(process.cwd(), target)}: missing`);
        stale += 1;
      } else {
        const committed = fs.readFileSync(target, 'utf8');
        if (committed !== text) {
          console.error(`${path.relative(process.cwd(), target)}: stale (${describeDifference(committed, text)})`);
          stale += 1;
        }
      }
    } else {
      fs.writeFileSync(target, text);
      console.log(`wrote ${path.relative(process.cwd(), target)}`);
    }
  }
  if (check) {
    if (stale > 0) {
      console.error(`compile.js --check: ${stale} artifact(s) out of date; run: node contracts_abi/compile.js`);
      process.exit(1);
    }
    console.log(`compile.js --check: ${Object.keys(artifacts).length} artifact(s) up to date`);
  }
}

main();
