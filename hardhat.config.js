// Hardhat 2 build of the same sources with the same settings as the Python build (contracts/compiler.json),
// fully offline: the compiler is the pinned npm `solc` (solc-js), never a download.
const path = require("path");
const fs = require("fs");
const crypto = require("crypto");
const { subtask, task, types } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");

const compiler = require("./contracts/compiler.json");
const buildDir = process.env.CIVIC_HARDHAT_BUILD || path.join(__dirname, "build", "hardhat");
const solcPackage = require("solc/package.json");

if (solcPackage.version !== compiler.solcVersion) {
  throw new Error(
    `node_modules/solc is ${solcPackage.version} but contracts/compiler.json pins ${compiler.solcVersion}; run npm ci`
  );
}

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async (args, hre, runSuper) => {
  if (args.solcVersion !== compiler.solcVersion) {
    return runSuper();
  }
  return {
    compilerPath: require.resolve("solc/soljson.js"),
    isSolcJs: true,
    version: args.solcVersion,
    longVersion: require("solc").version(),
  };
});

// `npx hardhat civic-deploy --governance 0x… --network civic`: the JavaScript teams' `civic-ledger deploy`. It deploys
// the bytecode shipped in ledger/artifacts (never a compile of its own), waits for the confirmations asked, writes the
// same deployment record (OUT/deployment.json, ledger.config.Deployment) and publishes the standard JSON input and the
// metadata of Hardhat's build of the same sources (OUT/source/), refused unless that build is the shipped bytecode.
// `civic-ledger verify-deployment --dir OUT` checks the result against the chain. The deployer is the network's first
// account: for `civic` (CIVIC_RPC_URL) the key in CIVIC_DEPLOYER_KEY (never printed), else the node's own accounts.
const ZERO_WORD = "0".repeat(64);

function word(hex) {
  return (ZERO_WORD + hex).slice(-64);
}

// EIP-55 mixed-case checksum encoding, as eth_utils.to_checksum_address writes addresses in the Python record.
function checksumAddress(address) {
  if (!/^0x[0-9a-fA-F]{40}$/.test(address)) {
    throw new Error(`${address} is not an address (0x and 40 hex digits)`);
  }
  const { keccak_256 } = require("@noble/hashes/sha3");
  const { bytesToHex } = require("@noble/hashes/utils");
  const lower = address.slice(2).toLowerCase();
  const hash = bytesToHex(keccak_256(lower));
  let out = "0x";
  for (let i = 0; i < 40; i++) {
    out += parseInt(hash[i], 16) >= 8 ? lower[i].toUpperCase() : lower[i];
  }
  if (address !== address.toLowerCase() && address.slice(2) !== address.slice(2).toUpperCase() && address !== out) {
    throw new Error(`${address} has a wrong EIP-55 checksum`);
  }
  return out;
}

// ledger.chain.deploy.source_hash: sha256 of the artifact's {source unit: sha256} table as canonical JSON.
function sourceHash(sources) {
  const sorted = {};
  for (const name of Object.keys(sources).sort()) {
    sorted[name] = sources[name];
  }
  return crypto.createHash("sha256").update(JSON.stringify(sorted)).digest("hex");
}

// ledger.chain.build.runtime_code_matches: the runtime code, with the immutables the constructor writes masked.
function runtimeCodeMatches(onchain, artifact) {
  const expected = Buffer.from(artifact.deployedBytecode.slice(2), "hex");
  const actual = Buffer.from(onchain.slice(2), "hex");
  if (expected.length !== actual.length) {
    return false;
  }
  for (const refs of Object.values(artifact.immutableReferences)) {
    for (const { start, length } of refs) {
      expected.fill(0, start, start + length);
      actual.fill(0, start, start + length);
    }
  }
  return expected.equals(actual);
}

function writeFile(file, text) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

async function publishSources(hre, shipped, directory) {
  await hre.run("compile", { quiet: true });
  const target = path.join(directory, "source");
  fs.mkdirSync(target, { recursive: true });
  let input;
  for (const [name, artifact] of Object.entries(shipped)) {
    const buildInfo = await hre.artifacts.getBuildInfo(`${artifact.sourceName}:${name}`);
    const built = buildInfo && buildInfo.output.contracts[artifact.sourceName][name];
    if (!built || "0x" + built.evm.bytecode.object !== artifact.bytecode) {
      throw new Error(`Hardhat's build of ${name} is not the shipped bytecode: run python -m ledger.chain.build`);
    }
    input = buildInfo.input;
    writeFile(path.join(target, `${name}.metadata.json`), built.metadata);
  }
  writeFile(path.join(target, "standard-input.json"), JSON.stringify(input, null, 1) + "\n");
}

async function waitForConfirmations(provider, txHash, confirmations, pollMs) {
  for (;;) {
    const receipt = await provider.request({ method: "eth_getTransactionReceipt", params: [txHash] });
    if (receipt !== null) {
      if (receipt.status !== "0x1") {
        throw new Error(`the deployment ${txHash} reverted`);
      }
      const head = Number(await provider.request({ method: "eth_blockNumber", params: [] }));
      if (head - Number(receipt.blockNumber) + 1 >= confirmations) {
        const block = await provider.request({ method: "eth_getBlockByNumber", params: [receipt.blockNumber, false] });
        if (block && block.hash === receipt.blockHash) {
          return receipt;
        }
      }
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

task("civic-deploy", "Deploy the shipped Civic Ledger (ledger/artifacts) and write its deployment record")
  .addParam("governance", "address named as the ledger's admin and governor (an account or a multisig)")
  .addOptionalParam("adminDelay", "seconds a handover of the governance role waits", 0, types.int)
  .addOptionalParam("confirmations", "blocks, the deployment's own included, to wait for", 1, types.int)
  .addOptionalParam("out", "directory for deployment.json and the published sources", "data")
  .addOptionalParam("expectChainId", "refuse to deploy on any other chain id", undefined, types.int)
  .addOptionalParam("pollMs", "milliseconds between two looks at the chain's head", 2000, types.int)
  .addFlag("replace", "overwrite an existing deployment record in OUT")
  .setAction(async (args, hre) => {
    const provider = hre.network.provider;
    const out = path.resolve(args.out);
    const recordFile = path.join(out, "deployment.json");
    if (fs.existsSync(recordFile) && !args.replace) {
      throw new Error(`${recordFile} exists (this directory serves a ledger already): choose another --out, or --replace`);
    }
    if (args.confirmations < 1 || args.adminDelay < 0 || args.adminDelay >= 2 ** 48) {
      throw new Error("--confirmations must be 1 or more, --admin-delay a uint48");
    }
    const governance = checksumAddress(args.governance);
    const chainId = Number(await provider.request({ method: "eth_chainId", params: [] }));
    if (args.expectChainId !== undefined && chainId !== args.expectChainId) {
      throw new Error(`the network serves chain id ${chainId}, expected ${args.expectChainId}`);
    }
    const accounts = await provider.request({ method: "eth_accounts", params: [] });
    if (accounts.length === 0) {
      throw new Error("no deployer account: set CIVIC_DEPLOYER_KEY (network civic) or use a node with accounts");
    }
    const deployer = checksumAddress(accounts[0]);
    const shipped = {
      CivicLedger: require("./ledger/artifacts/CivicLedger.json"),
      CivicFilings: require("./ledger/artifacts/CivicFilings.json"),
    };
    fs.mkdirSync(out, { recursive: true });
    await publishSources(hre, shipped, out); // before any gas is spent: a stale artifact stops here

    const ledger = shipped.CivicLedger;
    const data = ledger.bytecode + word(args.adminDelay.toString(16)) + word(governance.slice(2).toLowerCase());
    const txHash = await provider.request({ method: "eth_sendTransaction", params: [{ from: deployer, data }] });
    console.log(`deployment sent: ${txHash}; waiting for ${args.confirmations} confirmation(s)`);
    const receipt = await waitForConfirmations(provider, txHash, args.confirmations, args.pollMs);
    const address = checksumAddress(receipt.contractAddress);
    const code = await provider.request({ method: "eth_getCode", params: [address, "latest"] });
    if (!runtimeCodeMatches(code, ledger)) {
      throw new Error(`the code at ${address} is not the shipped CivicLedger`);
    }
    // the same fields, in the same order, as ledger.config.Deployment
    const record = {
      chain_id: chainId,
      address,
      block: Number(receipt.blockNumber),
      governance,
      tx_hash: txHash.toLowerCase(),
      deployer,
      admin_delay: args.adminDelay,
      confirmations: args.confirmations,
      compiler: ledger.compiler,
      compiler_settings: compiler.settings,
      source_hash: sourceHash(ledger.sources),
    };
    writeFile(recordFile, JSON.stringify(record, null, 2) + "\n");
    console.log(`deployed CivicLedger at ${address} on chain ${chainId} in block ${record.block}; wrote ${recordFile}`);
  });

/** @type import('hardhat/config').HardhatUserConfig */
module.exports = {
  solidity: {
    version: compiler.solcVersion,
    settings: compiler.settings,
  },
  networks: {
    // Hardhat's node (`npx hardhat node`, ledger.dev.hardhat_node.HardhatNode): the chain id it is asked for
    hardhat: { chainId: Number(process.env.CIVIC_HARDHAT_CHAIN_ID || 31337) },
    // any JSON-RPC node: CIVIC_RPC_URL, deploying from CIVIC_DEPLOYER_KEY (else the node's own unlocked accounts)
    civic: {
      url: process.env.CIVIC_RPC_URL || "http://127.0.0.1:8545",
      accounts: process.env.CIVIC_DEPLOYER_KEY ? [process.env.CIVIC_DEPLOYER_KEY] : "remote",
    },
  },
  paths: {
    sources: path.join(__dirname, "contracts"),
    // CIVIC_HARDHAT_BUILD lets the reproducible-build test compile into a directory of its own.
    artifacts: path.join(buildDir, "artifacts"),
    cache: path.join(buildDir, "cache"),
  },
};
