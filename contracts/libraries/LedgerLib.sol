// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ICivicLedger} from "../interfaces/ICivicLedger.sol";

/// @title What the ledger and its filings module share: the constants of the ledger's rules and the entry hash.
/// @notice One definition each. The ledger uses them privately; {CivicFilings} publishes them as views, as the ledger
/// has no room left under EIP-170 for their getters.
library LedgerLib {
    /// @dev Set in the id of every case that can have a receipt (the top bit).
    bytes32 internal constant RECEIPT_CASE_FLAG = bytes32(uint256(1) << 255);
    /// @dev How long after a receipt case's closure its holder may dispute the fulfilment.
    uint256 internal constant DISPUTE_WINDOW = 30 days;
    /// @dev How long the agency has to answer a dispute (the auditor's check; the ledger does not enforce it).
    uint256 internal constant DISPUTE_RESPONSE_WINDOW = 10 days;
    /// @dev The most entries one anchored batch may hold.
    uint64 internal constant MAX_BATCH_ENTRIES = 1 << 20;

    /// @dev Domain tag of entry hashes, so an entry hash can never equal any EIP-712 struct hash.
    bytes32 internal constant ENTRY_TYPEHASH =
        keccak256("Entry(uint256 seq,uint8 kind,bytes32 agencyId,address actor,bytes32 recordHash)");

    /// @dev `keccak256(abi.encode(ENTRY_TYPEHASH, seq, kind, agencyId, actor, recordHash))`: the entry hash the ledger
    /// folds into its running hash.
    function entryHash(
        uint256 seq,
        ICivicLedger.EntryKind kind,
        bytes32 agencyId,
        address actor,
        bytes32 recordHash
    ) internal pure returns (bytes32 hash) {
        // Same bytes as abi.encode, hashed in memory past the free memory pointer without claiming it: abi.encode
        // would allocate afresh for every entry of a batch, and memory expansion grows quadratically.
        bytes32 typehash = ENTRY_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typehash)
            mstore(add(m, 0x20), seq)
            mstore(add(m, 0x40), kind)
            mstore(add(m, 0x60), agencyId)
            mstore(add(m, 0x80), actor)
            mstore(add(m, 0xa0), recordHash)
            hash := keccak256(m, 0xc0)
        }
    }
}
