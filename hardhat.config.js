// Hardhat 2 build of the same sources with the same settings as the Python build (contracts/compiler.json),
// fully offline: the compiler is the pinned npm `solc` (solc-js), never a download.
const path = require("path");
const { subtask } = require("hardhat/config");
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

/** @type import('hardhat/config').HardhatUserConfig */
module.exports = {
  solidity: {
    version: compiler.solcVersion,
    settings: compiler.settings,
  },
  paths: {
    sources: path.join(__dirname, "contracts"),
    // CIVIC_HARDHAT_BUILD lets the reproducible-build test compile into a directory of its own.
    artifacts: path.join(buildDir, "artifacts"),
    cache: path.join(buildDir, "cache"),
  },
};
