/// Why an encrypted configuration file (spec §5) could not be decrypted, or a file could not be encrypted.
///
/// `message` is meant for a provisioning administrator as it stands: it says what is wrong and how to fix it.
/// Match on `kind` in code; the set of kinds can grow.
///
/// ```swift
/// do {
///     _ = try FileCrypto.decrypt(body, key: storedKey, bits: 128, digest: .md5)
/// } catch {
///     print(error)
///     // encrypted with OpenSSL >= 1.1 defaults (SHA-256 key derivation); this phone expects MD5:
///     // re-encrypt with -md md5
/// }
/// ```
public struct DecryptionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, for code to branch on.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case noKey, notBase64, truncated, badHeader, wrongKey, otherDigest, unsupportedKeyLength, library
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The file is encrypted but no key (`CFG_FILE_KEY`) is stored, or the key given is empty.
        public static let noKey = Kind(.noKey)
        /// The body is not base64 text.
        public static let notBase64 = Kind(.notBase64)
        /// The body is cut off: shorter than the header, or a ciphertext that is not whole AES blocks.
        public static let truncated = Kind(.truncated)
        /// The decoded body does not start with `Salted__` (not made by `openssl enc -salt`), or a bad salt.
        public static let badHeader = Kind(.badHeader)
        /// The padding (or the decrypted text) does not check out under the key given, with either digest.
        public static let wrongKey = Kind(.wrongKey)
        /// The file decrypts, but only with the other key-derivation digest (MD5 versus SHA-256).
        public static let otherDigest = Kind(.otherDigest)
        /// `CFG_FILE_KEY_LENGTH` is not 128, 192 or 256.
        public static let unsupportedKeyLength = Kind(.unsupportedKeyLength)
        /// libcrypto itself failed (out of memory, no random source, a broken installation).
        public static let library = Kind(.library)

        /// A stable machine name: "noKey", "notBase64", "truncated", "badHeader", "wrongKey", "otherDigest",
        /// "unsupportedKeyLength" or "library" (for logs and event fields).
        public var name: String { base.rawValue }

        public var description: String { name }
    }

    public var kind: Kind
    /// What is wrong and the fix, in plain words.
    public var message: String

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

// MARK: - Messages

extension DecryptionError {
    static let noKeyStored = DecryptionError(
        .noKey,
        "the file is encrypted but no key (CFG_FILE_KEY) is stored: serve a plain standard file with CFG_FILE_KEY first"
    )

    static let emptyKeyForEncryption = DecryptionError(
        .noKey,
        "the key is empty: the phone treats an empty CFG_FILE_KEY as no key, so give a non-empty key"
    )

    static func unsupportedKeyLength(_ bits: Int) -> DecryptionError {
        DecryptionError(.unsupportedKeyLength, "CFG_FILE_KEY_LENGTH is \(bits): expected 128, 192 or 256")
    }

    static func wrongKey(_ why: String) -> DecryptionError {
        DecryptionError(.wrongKey, "wrong key (or the file was encrypted for another phone): \(why)")
    }

    /// The file decrypts, but only under the digest the phone does not expect.
    static func otherDigest(expected: KDFDigest) -> DecryptionError {
        switch expected {
        case .md5:
            DecryptionError(
                .otherDigest,
                "encrypted with OpenSSL >= 1.1 defaults (SHA-256 key derivation); this phone expects MD5: "
                    + "re-encrypt with -md md5"
            )
        case .sha256:
            DecryptionError(
                .otherDigest,
                "encrypted with MD5 key derivation (OpenSSL < 1.1 defaults, or -md md5); this phone expects SHA-256: "
                    + "re-encrypt with -md sha256"
            )
        }
    }

    static func truncated(_ why: String) -> DecryptionError {
        DecryptionError(.truncated, "the encrypted file is cut off: \(why); download or copy it again")
    }

    static func badHeader(_ why: String) -> DecryptionError {
        DecryptionError(.badHeader, why)
    }
}
