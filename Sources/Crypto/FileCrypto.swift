import COpenSSL

/// The key-derivation digest inside EVP_BytesToKey (spec §5): MD5 for OpenSSL before 1.1.0, which is what the
/// phone's firmware expects; SHA-256 is what `openssl enc` uses on OpenSSL 1.1.0 and later unless given `-md md5`.
public enum KDFDigest: String, Sendable, Hashable, CaseIterable {
    case md5, sha256

    /// The digest that is not this one.
    var other: KDFDigest { self == .md5 ? .sha256 : .md5 }
}

/// Encrypted configuration files (spec §5, admin guide §2.6): what
/// `openssl enc -aes-{128,192,256}-cbc -a -salt -md {md5,sha256} -pass pass:KEY` makes, byte for byte.
///
/// ```swift
/// let key = FileCrypto.generateKey()
/// let body = try FileCrypto.encrypt(Array(xml.utf8), key: key, bits: 128, digest: .md5)
/// if FileCrypto.looksEncrypted(body) {
///     let plain = try FileCrypto.decrypt(body, key: key, bits: 128, digest: .md5)
/// }
/// ```
public enum FileCrypto {
    /// "Salted__" as base64 holds 60 whole bits: these 10 characters start every `openssl enc -a -salt` file.
    private static let saltedBase64 = Array("U2FsdGVkX1".utf8)
    private static let saltedMagic = Array("Salted__".utf8)
    private static let saltLength = 8
    private static let blockLength = 16
    private static let materialLength = Int(EVP_MAX_KEY_LENGTH + EVP_MAX_IV_LENGTH)

    // MARK: - Detection

    /// Spec §5 detection: the body (after optional leading whitespace) starts with "U2FsdGVkX1" ("Salted__" in
    /// base64).
    public static func looksEncrypted(_ body: [UInt8]) -> Bool {
        guard let start = body.firstIndex(where: { !isWhitespace($0) }) else { return false }
        return body[start...].starts(with: saltedBase64)
    }

    // MARK: - Decryption

    /// Decrypts what `openssl enc -aes-{bits}-cbc -a -salt -md {digest} -pass pass:KEY` produced.
    ///
    /// The body is base64 (any line length, CRLF or LF, surrounding whitespace allowed) of "Salted__", an 8-byte
    /// salt and the AES-CBC ciphertext with PKCS#7 padding; key and IV come from EVP_BytesToKey with one iteration
    /// and `digest`. Decryption succeeds only when the padding checks out *and* the plaintext looks like text: a
    /// wrong key passes the padding check about once in 256 tries.
    ///
    /// ```swift
    /// let xml = try FileCrypto.decrypt(body, key: "12341234abcdabcd12341234abcdabcd", bits: 128, digest: .md5)
    /// ```
    /// - Throws: `DecryptionError` of kind `.noKey` (empty key), `.unsupportedKeyLength`, `.notBase64`,
    ///   `.truncated`, `.badHeader`, `.otherDigest` (the file decrypts only with the other digest: still refused,
    ///   as by the phone), `.wrongKey`, or `.library`.
    public static func decrypt(
        _ body: [UInt8],
        key: String,
        bits: Int,
        digest: KDFDigest
    ) throws(DecryptionError) -> [UInt8] {
        if key.isEmpty { throw .noKeyStored }
        let cipher = try LibCrypto.cipher(bits: bits)
        let raw = try Base64.decode(body)
        let (salt, ciphertext) = try split(raw)

        var passphrase = Array(key.utf8)
        defer { LibCrypto.cleanse(&passphrase) }
        let expected = try attempt(ciphertext, cipher: cipher, digest: digest, passphrase: passphrase, salt: salt)
        if case .text(let plain) = expected { return plain }

        // spec §5: a file made with the other digest is still refused, but the diagnosis says so.
        let other = try attempt(ciphertext, cipher: cipher, digest: digest.other, passphrase: passphrase, salt: salt)
        switch (expected, other) {
        case (_, .text(var plain)):
            LibCrypto.cleanse(&plain)
            throw .otherDigest(expected: digest)
        case (_, .textWithoutEnd):
            throw .otherDigest(expected: digest)
        case (.textWithoutEnd, _):
            // Cut at a line boundary (64 characters = 3 whole blocks): every block decrypts to text, but the last
            // one is not the padded end. A wrong key gives no text at all.
            throw .truncated("it decrypts to text but its end is missing (the padding does not check out)")
        case (.notText, _):
            throw .wrongKey("the padding checks out but the decrypted bytes are not text")
        default:
            throw .wrongKey("the padding does not check out")
        }
    }

    /// Splits the decoded body into salt and ciphertext, checking the header and the block structure.
    private static func split(_ raw: [UInt8]) throws(DecryptionError) -> (salt: [UInt8], ciphertext: ArraySlice<UInt8>)
    {
        if raw.count < saltedMagic.count && saltedMagic.starts(with: raw) {
            throw .truncated("it holds only \(raw.count) bytes, less than the 16-byte Salted__ header")
        }
        guard raw.starts(with: saltedMagic) else {
            throw .badHeader(
                "the decoded file does not start with \"Salted__\": it was not made by `openssl enc -salt`; "
                    + "encrypt it with openssl enc -aes-128-cbc -a -salt -md md5 -pass pass:KEY"
            )
        }
        let headerLength = saltedMagic.count + saltLength
        guard raw.count >= headerLength + blockLength else {
            throw .truncated("it holds \(raw.count) bytes, less than a header and one 16-byte AES block")
        }
        let ciphertext = raw[headerLength...]
        guard ciphertext.count % blockLength == 0 else {
            throw .truncated("its ciphertext is \(ciphertext.count) bytes, not a whole number of 16-byte AES blocks")
        }
        return (Array(raw[saltedMagic.count..<headerLength]), ciphertext)
    }

    private enum Attempt {
        /// Padding and plaintext check out.
        case text([UInt8])
        /// The padding checks out, the plaintext is not text: a wrong key that passed the padding by chance.
        case notText
        /// The padding does not check out, but everything decrypts to text: the right key, a cut-off file.
        case textWithoutEnd
        /// Neither: a wrong key (or digest).
        case garbage
    }

    /// Decrypts under one digest and judges the result.
    private static func attempt(
        _ ciphertext: ArraySlice<UInt8>,
        cipher: OpaquePointer,
        digest: KDFDigest,
        passphrase: [UInt8],
        salt: [UInt8]
    ) throws(DecryptionError) -> Attempt {
        let material = UnsafeMutablePointer<UInt8>.allocate(capacity: materialLength)
        defer {
            LibCrypto.cleanse(material, count: materialLength)
            material.deallocate()
        }
        try LibCrypto.deriveKey(
            into: material,
            cipher: cipher,
            digest: LibCrypto.digest(digest),
            passphrase: passphrase,
            salt: salt
        )
        // Padding is checked here, not by OpenSSL, so a wrong key is a verdict rather than a library error.
        var plain = try LibCrypto.aesCBC(
            encrypt: false,
            cipher: cipher,
            material: material,
            padding: false,
            input: ciphertext
        )
        guard let pad = plain.last, (1...UInt8(blockLength)).contains(pad),
            plain.suffix(Int(pad)).allSatisfy({ $0 == pad })
        else {
            // A cut at a line boundary leaves at least 2 blocks (the first line holds header + 32 bytes), enough
            // that random bytes from a wrong key never pass for text. The cut may split a multi-byte character:
            // allow up to 3 bytes of an unfinished one.
            let textual =
                plain.count >= 2 * blockLength && (0...3).contains { looksLikeText(plain.dropLast($0)) }
            LibCrypto.cleanse(&plain)
            return textual ? .textWithoutEnd : .garbage
        }
        plain.removeLast(Int(pad))
        if looksLikeText(plain[...]) { return .text(plain) }
        LibCrypto.cleanse(&plain)
        return .notText
    }

    /// Valid UTF-8, no NUL, and at most one control character (other than tab, LF, FF, CR) per 100 bytes:
    /// configuration files are XML or text, random bytes from a wrong key are neither.
    static func looksLikeText(_ bytes: ArraySlice<UInt8>) -> Bool {
        // One branch-free pass: the low 32 bits count controls, the high 32 bits count NULs.
        var weights: UInt64 = 0
        var anyHigh: UInt8 = 0
        textWeights.withUnsafeBufferPointer { table in
            bytes.withUnsafeBufferPointer { buffer in
                for byte in buffer {
                    weights &+= table[Int(byte)]
                    anyHigh |= byte
                }
            }
        }
        let controls = Int(weights & 0xFFFF_FFFF)
        guard weights >> 32 == 0, controls * 100 <= bytes.count else { return false }
        return anyHigh < 0x80 || String(validating: bytes, as: UTF8.self) != nil
    }

    private static let textWeights: [UInt64] = (0...255).map { byte in
        switch byte {
        case 0x00: 1 << 32
        case 0x09, 0x0A, 0x0C, 0x0D: 0
        case 0x01..<0x20, 0x7F: 1
        default: 0
        }
    }

    // MARK: - Encryption

    /// Encrypts byte for byte like `openssl enc -aes-{bits}-cbc -a -salt -md {digest} -pass pass:KEY -S SALT`:
    /// base64 in 64-column lines ending with a newline.
    ///
    /// ```swift
    /// let body = try FileCrypto.encrypt(Array(xml.utf8), key: key, bits: 256, digest: .md5)
    /// ```
    /// - Parameter salt: 8 bytes; nil draws 8 random bytes (RAND_bytes), as `openssl enc -salt` does.
    /// - Throws: `DecryptionError` of kind `.noKey` (empty key), `.unsupportedKeyLength`, `.badHeader` (a salt
    ///   that is not 8 bytes), or `.library`.
    public static func encrypt(
        _ plain: [UInt8],
        key: String,
        bits: Int,
        digest: KDFDigest,
        salt: [UInt8]? = nil
    ) throws(DecryptionError) -> [UInt8] {
        if key.isEmpty { throw .emptyKeyForEncryption }
        let cipher = try LibCrypto.cipher(bits: bits)
        let saltBytes: [UInt8]
        if let salt { saltBytes = salt } else { saltBytes = try LibCrypto.randomBytes(saltLength) }
        guard saltBytes.count == saltLength else {
            throw .badHeader("the salt is \(saltBytes.count) bytes: it must be 8 bytes (16 hex digits)")
        }

        var passphrase = Array(key.utf8)
        let material = UnsafeMutablePointer<UInt8>.allocate(capacity: materialLength)
        defer {
            LibCrypto.cleanse(&passphrase)
            LibCrypto.cleanse(material, count: materialLength)
            material.deallocate()
        }
        try LibCrypto.deriveKey(
            into: material,
            cipher: cipher,
            digest: LibCrypto.digest(digest),
            passphrase: passphrase,
            salt: saltBytes
        )
        let ciphertext = try LibCrypto.aesCBC(
            encrypt: true,
            cipher: cipher,
            material: material,
            padding: true,
            input: plain[...]
        )
        return Base64.encode(saltedMagic + saltBytes + ciphertext)
    }

    // MARK: - Keys

    private static let keyAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)

    /// A fresh 32-character key over [A-Za-z0-9] for `CFG_FILE_KEY` (the guide's "unique 32-byte key").
    ///
    /// Random bytes come from RAND_bytes; bytes of 248 and above are dropped so that every character is equally
    /// likely (248 = 4 × 62). Should libcrypto's generator fail, the system's generator (also cryptographically
    /// secure) stands in.
    public static func generateKey() -> String {
        var key: [UInt8] = []
        key.reserveCapacity(32)
        let limit = UInt8(256 / keyAlphabet.count * keyAlphabet.count)
        while key.count < 32 {
            var bytes: [UInt8]
            do {
                bytes = try LibCrypto.randomBytes(48)
            } catch {
                var system = SystemRandomNumberGenerator()
                bytes = (0..<48).map { _ in UInt8.random(in: .min ... .max, using: &system) }
            }
            for byte in bytes where byte < limit && key.count < 32 {
                key.append(keyAlphabet[Int(byte) % keyAlphabet.count])
            }
            LibCrypto.cleanse(&bytes)
        }
        defer { LibCrypto.cleanse(&key) }
        return String(decoding: key, as: UTF8.self)
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D || byte == 0x0B || byte == 0x0C
    }
}
