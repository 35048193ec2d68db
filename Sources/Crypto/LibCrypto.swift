import COpenSSL

/// The one funnel between this module and libcrypto (ARCHITECTURE rule 3): every OpenSSL call whose result can
/// fail goes through `check` or `checked`, which turn a failure into a `DecryptionError` carrying the text of
/// OpenSSL's error queue.
enum LibCrypto {
    /// Throws unless `rc` is 1, OpenSSL's success code for the EVP and RAND functions used here.
    static func check(_ rc: Int32, _ call: StaticString) throws(DecryptionError) {
        if rc != 1 { throw failure(call) }
    }

    /// Throws when an allocating OpenSSL call returned NULL.
    static func checked<P>(_ pointer: P?, _ call: StaticString) throws(DecryptionError) -> P {
        guard let pointer else { throw failure(call) }
        return pointer
    }

    /// Builds the error for a failed `call` and empties this thread's OpenSSL error queue.
    static func failure(_ call: StaticString) -> DecryptionError {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &text, text.count)
            reasons.append(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        let detail = reasons.isEmpty ? "no OpenSSL error recorded" : reasons.joined(separator: "; ")
        return DecryptionError(
            .library,
            "libcrypto failed in \(call) (\(detail)): check the OpenSSL installation (libcrypto 1.1 or 3.x)"
        )
    }

    // MARK: - Algorithms

    static func cipher(bits: Int) throws(DecryptionError) -> OpaquePointer {
        switch bits {
        case 128: try checked(EVP_aes_128_cbc(), "EVP_aes_128_cbc")
        case 192: try checked(EVP_aes_192_cbc(), "EVP_aes_192_cbc")
        case 256: try checked(EVP_aes_256_cbc(), "EVP_aes_256_cbc")
        default: throw .unsupportedKeyLength(bits)
        }
    }

    static func digest(_ digest: KDFDigest) throws(DecryptionError) -> OpaquePointer {
        switch digest {
        case .md5: try checked(EVP_md5(), "EVP_md5")
        case .sha256: try checked(EVP_sha256(), "EVP_sha256")
        }
    }

    // MARK: - Key derivation and AES-CBC

    /// Derives key and IV like `openssl enc -salt -md digest -pass pass:...`: EVP_BytesToKey, one iteration.
    /// Both live in `material`, which must hold `EVP_MAX_KEY_LENGTH + EVP_MAX_IV_LENGTH` bytes.
    static func deriveKey(
        into material: UnsafeMutablePointer<UInt8>,
        cipher: OpaquePointer,
        digest: OpaquePointer,
        passphrase: [UInt8],
        salt: [UInt8]
    ) throws(DecryptionError) {
        let keyLength = passphrase.withUnsafeBufferPointer { pass in
            salt.withUnsafeBufferPointer { salt in
                EVP_BytesToKey(
                    cipher,
                    digest,
                    salt.baseAddress,
                    pass.baseAddress,
                    Int32(pass.count),
                    1,
                    material,
                    material + Int(EVP_MAX_KEY_LENGTH)
                )
            }
        }
        if keyLength == 0 { throw failure("EVP_BytesToKey") }
    }

    /// Runs AES-CBC over `input` with the key and IV in `material` (as filled by `deriveKey`).
    /// `padding` false leaves PKCS#7 to the caller, so that a wrong key is a verdict, not an OpenSSL error.
    static func aesCBC(
        encrypt: Bool,
        cipher: OpaquePointer,
        material: UnsafeMutablePointer<UInt8>,
        padding: Bool,
        input: ArraySlice<UInt8>
    ) throws(DecryptionError) -> [UInt8] {
        guard input.count <= Int(Int32.max) - 64 else {
            throw DecryptionError(.truncated, "the file is \(input.count) bytes: larger than 2 GB, not a config file")
        }
        let ctx = try checked(EVP_CIPHER_CTX_new(), "EVP_CIPHER_CTX_new")
        defer { EVP_CIPHER_CTX_free(ctx) }
        try check(
            EVP_CipherInit_ex(ctx, cipher, nil, material, material + Int(EVP_MAX_KEY_LENGTH), encrypt ? 1 : 0),
            "EVP_CipherInit_ex"
        )
        try check(EVP_CIPHER_CTX_set_padding(ctx, padding ? 1 : 0), "EVP_CIPHER_CTX_set_padding")
        var rc: (update: Int32, final: Int32) = (1, 1)
        let out = [UInt8](unsafeUninitializedCapacity: input.count + 32) { buffer, count in
            var updated: Int32 = 0
            var finished: Int32 = 0
            rc.update = input.withUnsafeBufferPointer { src in
                EVP_CipherUpdate(ctx, buffer.baseAddress, &updated, src.baseAddress, Int32(src.count))
            }
            if rc.update == 1 {
                rc.final = EVP_CipherFinal_ex(ctx, buffer.baseAddress.map { $0 + Int(updated) }, &finished)
            }
            count = rc.update == 1 && rc.final == 1 ? Int(updated + finished) : 0
        }
        try check(rc.update, "EVP_CipherUpdate")
        try check(rc.final, "EVP_CipherFinal_ex")
        return out
    }

    // MARK: - Randomness and hygiene

    static func randomBytes(_ count: Int) throws(DecryptionError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try check(RAND_bytes(&bytes, Int32(count)), "RAND_bytes")
        return bytes
    }

    /// Overwrites `bytes` with zeros in a way the optimiser keeps (OPENSSL_cleanse).
    static func cleanse(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress { OPENSSL_cleanse(base, raw.count) }
        }
    }

    static func cleanse(_ pointer: UnsafeMutablePointer<UInt8>, count: Int) {
        OPENSSL_cleanse(pointer, count)
    }
}
