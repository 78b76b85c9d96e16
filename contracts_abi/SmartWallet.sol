// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title SmartWallet: the smallest EIP-1271 contract wallet, for tests.
/// @notice Accepts a signature iff it is a 65-byte ECDSA signature by the owner over the raw digest
/// (no "\x19Ethereum Signed Message" prefix), which is how a token checks EIP-3009 and permit signatures
/// for contract payers.
contract SmartWallet {
    bytes4 internal constant MAGIC_VALUE = 0x1626ba7e;
    bytes4 internal constant INVALID_VALUE = 0xffffffff;

    address public immutable owner;

    constructor(address owner_) {
        owner = owner_;
    }

    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (signature.length != 65) {
            return INVALID_VALUE;
        }
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        address signer = ecrecover(hash, v, r, s);
        if (signer == address(0) || signer != owner) {
            return INVALID_VALUE;
        }
        return MAGIC_VALUE;
    }
}
