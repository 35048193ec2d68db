import Crypto
import Foundation
import Testing

/// spec §5 test vector.
private let vectorKey = "12341234abcdabcd12341234abcdabcd"
private let vectorSalt: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
private let vectorPlain = Array("<PANASIPPhoneConfig>\r\n</PANASIPPhoneConfig>\r\n".utf8)
private let vectorBody = Array(
    "U2FsdGVkX18BAgMEBQYHCBsc0vVMoxi4ozQdEbcKwwvQ/oGyYT6aoXKSWalVVjY3\nEZr6SExY94TUcgRYNprQPw==\n".utf8
)

private let allBits = [128, 192, 256]

/// A standard-format configuration of about `size` bytes, with CRLF line ends like the phone's files.
private func config(size: Int) -> [UInt8] {
    var text = "# Panasonic SIP Phone Standard Format File #\r\n"
    var line = 0
    while text.utf8.count < size {
        line += 1
        text += "SIP_AUTHID_\(line % 6 + 1)=\"user\(line)\"\r\nPHONEBOOK_NAME_\(line)=\"Müller \(line)\"\r\n"
    }
    return Array(text.utf8.prefix(size))
}

private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

@Suite("FileCrypto: spec §5 encrypted files")
struct FileCryptoTests {
    // MARK: - The spec's test vector

    @Test("spec §5 vector decrypts to the exact 45 bytes")
    func specVectorDecrypts() throws {
        let plain = try FileCrypto.decrypt(vectorBody, key: vectorKey, bits: 128, digest: .md5)
        #expect(plain == vectorPlain)
        #expect(plain.count == 45)
    }

    @Test("spec §5 vector is what encrypt makes with its salt")
    func specVectorEncrypts() throws {
        let body = try FileCrypto.encrypt(vectorPlain, key: vectorKey, bits: 128, digest: .md5, salt: vectorSalt)
        #expect(body == vectorBody)
    }

    // MARK: - Byte compatibility with the openssl command, both ways

    @Test("openssl enc output decrypts", arguments: allBits, KDFDigest.allCases)
    func decryptsOpenSSLOutput(bits: Int, digest: KDFDigest) throws {
        let key = FileCrypto.generateKey()
        for size in [0, 1, 15, 16, 64, 1000] {
            let plain = config(size: size)
            let body = try OpenSSLCommand.encrypt(plain, key: key, bits: bits, digest: digest.rawValue)
            #expect(FileCrypto.looksEncrypted(body))
            #expect(try FileCrypto.decrypt(body, key: key, bits: bits, digest: digest) == plain, "size \(size)")
        }
    }

    @Test("encrypt with openssl's own salt is byte-identical to openssl enc", arguments: allBits, KDFDigest.allCases)
    func encryptMatchesOpenSSL(bits: Int, digest: KDFDigest) throws {
        let key = FileCrypto.generateKey()
        for size in [0, 1, 15, 16, 64, 1000] {
            let plain = config(size: size)
            let theirs = try OpenSSLCommand.encrypt(plain, key: key, bits: bits, digest: digest.rawValue)
            let salt = Array(try OpenSSLCommand.run(["base64", "-d"], input: theirs)[8..<16])
            let ours = try FileCrypto.encrypt(plain, key: key, bits: bits, digest: digest, salt: salt)
            #expect(text(ours) == text(theirs), "size \(size)")
        }
    }

    /// `openssl enc -S` leaves out the "Salted__" header (apps/enc.c writes it only for a salt it drew itself), so
    /// the header goes in front of its raw output and `openssl base64` lays the whole out in 64-column lines.
    @Test("encrypt with a fixed salt is byte-identical to openssl enc -S", arguments: allBits, KDFDigest.allCases)
    func encryptMatchesOpenSSLFixedSalt(bits: Int, digest: KDFDigest) throws {
        let key = FileCrypto.generateKey()
        let salt: [UInt8] = [0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x11, 0x22, 0xFF]
        let hexSalt = salt.map { String(format: "%02x", $0) }.joined()
        for size in [0, 1, 15, 16, 64, 1000] {
            let plain = config(size: size)
            let raw = try OpenSSLCommand.run(
                ["enc", "-aes-\(bits)-cbc", "-salt", "-md", digest.rawValue, "-pass", "pass:\(key)", "-S", hexSalt],
                input: plain
            )
            let theirs = try OpenSSLCommand.run(["base64"], input: Array("Salted__".utf8) + salt + raw)
            let ours = try FileCrypto.encrypt(plain, key: key, bits: bits, digest: digest, salt: salt)
            #expect(text(ours) == text(theirs), "size \(size)")
        }
    }

    @Test("encrypt output decrypts with openssl enc -d", arguments: allBits, KDFDigest.allCases)
    func openSSLDecryptsOurOutput(bits: Int, digest: KDFDigest) throws {
        let key = FileCrypto.generateKey()
        let plain = config(size: 3000)
        let body = try FileCrypto.encrypt(plain, key: key, bits: bits, digest: digest)
        #expect(FileCrypto.looksEncrypted(body))
        #expect(try OpenSSLCommand.decrypt(body, key: key, bits: bits, digest: digest.rawValue) == plain)
    }

    @Test("a 120 KB file round-trips through openssl both ways")
    func largeFileRoundTrip() throws {
        let key = FileCrypto.generateKey()
        let plain = config(size: 120 * 1024)
        let fromOpenSSL = try OpenSSLCommand.encrypt(plain, key: key, bits: 256, digest: "md5")
        #expect(try FileCrypto.decrypt(fromOpenSSL, key: key, bits: 256, digest: .md5) == plain)
        let ours = try FileCrypto.encrypt(plain, key: key, bits: 256, digest: .md5)
        #expect(try OpenSSLCommand.decrypt(ours, key: key, bits: 256, digest: "md5") == plain)
        #expect(try FileCrypto.decrypt(ours, key: key, bits: 256, digest: .md5) == plain)
    }

    @Test("CRLF, long lines, leading and trailing whitespace are accepted")
    func lenientLayout() throws {
        let plain = config(size: 500)
        let body = try FileCrypto.encrypt(plain, key: vectorKey, bits: 128, digest: .md5)
        let text = String(decoding: body, as: UTF8.self)
        let crlf = Array(text.replacingOccurrences(of: "\n", with: "\r\n").utf8)
        let oneLine = Array(("  \n" + text.replacingOccurrences(of: "\n", with: "") + " \t\r\n\r\n").utf8)
        let short = Array(
            text.replacingOccurrences(of: "\n", with: "").enumerated().map { i, c in
                i % 20 == 19 ? "\(c)\n" : "\(c)"
            }.joined().utf8
        )
        for variant in [crlf, oneLine, short] {
            #expect(FileCrypto.looksEncrypted(variant))
            #expect(try FileCrypto.decrypt(variant, key: vectorKey, bits: 128, digest: .md5) == plain)
        }
    }

    // MARK: - Diagnoses

    @Test("a file made with the other digest is refused with a re-encrypt hint", arguments: KDFDigest.allCases)
    func otherDigest(expected: KDFDigest) throws {
        let made = expected == .md5 ? "sha256" : "md5"
        let body = try OpenSSLCommand.encrypt(config(size: 700), key: vectorKey, bits: 128, digest: made)
        let error = #expect(throws: DecryptionError.self) {
            try FileCrypto.decrypt(body, key: vectorKey, bits: 128, digest: expected)
        }
        #expect(error?.kind == .otherDigest)
        switch expected {
        case .md5:
            #expect(
                error?.message
                    == "encrypted with OpenSSL >= 1.1 defaults (SHA-256 key derivation); this phone expects MD5: "
                    + "re-encrypt with -md md5"
            )
        case .sha256:
            #expect(error?.message.contains("this phone expects SHA-256: re-encrypt with -md sha256") == true)
        }
    }

    @Test("a wrong key is .wrongKey, every time", arguments: KDFDigest.allCases)
    func wrongKey(digest: KDFDigest) throws {
        let plain = config(size: 200)
        let body = try OpenSSLCommand.encrypt(plain, key: vectorKey, bits: 192, digest: digest.rawValue)
        let error = #expect(throws: DecryptionError.self) {
            try FileCrypto.decrypt(body, key: "abcdabcd12341234abcdabcd12341234", bits: 192, digest: digest)
        }
        #expect(error?.kind == .wrongKey)
        // Usually the padding gives a wrong key away; with one salt in 256 it checks out and the text check does.
        #expect(
            error?.message.hasPrefix("wrong key (or the file was encrypted for another phone): ") == true,
            "\(String(describing: error?.message))"
        )
        // A wrong key passes the padding check about once in 256 salts: the text check must still refuse it.
        for _ in 0..<1500 {
            let other = try FileCrypto.encrypt(
                Array("short".utf8),
                key: FileCrypto.generateKey(),
                bits: 128,
                digest: digest
            )
            let error = #expect(throws: DecryptionError.self) {
                try FileCrypto.decrypt(other, key: vectorKey, bits: 128, digest: digest)
            }
            #expect(error?.kind == .wrongKey)
        }
    }

    @Test("binary content under the right key is not taken for a configuration")
    func binaryPlaintext() throws {
        let binary = (0..<64).map { UInt8($0) }
        let body = try FileCrypto.encrypt(binary, key: vectorKey, bits: 128, digest: .md5)
        let error = #expect(throws: DecryptionError.self) {
            try FileCrypto.decrypt(body, key: vectorKey, bits: 128, digest: .md5)
        }
        #expect(error?.kind == .wrongKey)
    }

    @Test("a cut-off file is .truncated")
    func truncated() throws {
        let body = try FileCrypto.encrypt(config(size: 500), key: vectorKey, bits: 128, digest: .md5)
        let lines = String(decoding: body, as: UTF8.self).split(separator: "\n")
        let cuts: [String] = [
            lines.dropLast().joined(separator: "\n") + "\n",  // a whole line lost: not whole AES blocks
            String(lines[0].prefix(21)),  // stops inside a 4-character group
            String(lines[0].prefix(12)),  // only part of the Salted__ header
            String(lines[0].prefix(24)),  // header and salt, no ciphertext
        ]
        for cut in cuts {
            let error = #expect(throws: DecryptionError.self) {
                try FileCrypto.decrypt(Array(cut.utf8), key: vectorKey, bits: 128, digest: .md5)
            }
            #expect(error?.kind == .truncated, "\(cut)")
        }
        // Cut at a line boundary the blocks are whole: the text decrypts, but the padded end is missing.
        let error = #expect(throws: DecryptionError.self) {
            try FileCrypto.decrypt(Array(cuts[0].utf8), key: vectorKey, bits: 128, digest: .md5)
        }
        #expect(
            error?.message
                == "the encrypted file is cut off: it decrypts to text but its end is missing (the padding does not "
                + "check out); download or copy it again"
        )
    }

    @Test("bytes that are not base64 are .notBase64, with line, column and offset")
    func notBase64() throws {
        var text = String(decoding: vectorBody, as: UTF8.self)
        text.insert("#", at: text.index(text.startIndex, offsetBy: 70))  // line 2, column 6
        let error = #expect(throws: DecryptionError.self) {
            try FileCrypto.decrypt(Array(text.utf8), key: vectorKey, bits: 128, digest: .md5)
        }
        #expect(error?.kind == .notBase64)
        #expect(error?.message.contains("not base64 at line 2, column 6 (byte offset 70)") == true)
        #expect(error?.message.contains("'#'") == true)

        for bad in ["U2FsdGVkX1=8BAgME", "U2FsdGVkX18BAgMEBQ==AAAA", "U2Fsd\u{0}GVk"] {
            let error = #expect(throws: DecryptionError.self) {
                try FileCrypto.decrypt(Array(bad.utf8), key: vectorKey, bits: 128, digest: .md5)
            }
            #expect(error?.kind == .notBase64, "\(bad)")
        }
    }

    @Test("base64 of something else than Salted__ is .badHeader")
    func badHeader() throws {
        let body = Array(Data("This is not an openssl enc file at all, sorry.".utf8).base64EncodedString().utf8)
        let error = #expect(throws: DecryptionError.self) {
            try FileCrypto.decrypt(body, key: vectorKey, bits: 128, digest: .md5)
        }
        #expect(error?.kind == .badHeader)
        #expect(throws: DecryptionError.self) {
            try FileCrypto.encrypt([1], key: vectorKey, bits: 128, digest: .md5, salt: [1, 2, 3])
        }
    }

    @Test("an empty key is .noKey")
    func emptyKey() throws {
        let error = #expect(throws: DecryptionError.self) {
            try FileCrypto.decrypt(vectorBody, key: "", bits: 128, digest: .md5)
        }
        #expect(error?.kind == .noKey)
        #expect(
            error?.message
                == "the file is encrypted but no key (CFG_FILE_KEY) is stored: serve a plain standard file with "
                + "CFG_FILE_KEY first"
        )
        let encryptError = #expect(throws: DecryptionError.self) {
            try FileCrypto.encrypt(vectorPlain, key: "", bits: 128, digest: .md5)
        }
        #expect(encryptError?.kind == .noKey)
    }

    @Test("a key length other than 128, 192, 256 is .unsupportedKeyLength", arguments: [0, 64, 100, 512])
    func unsupportedKeyLength(bits: Int) throws {
        let error = #expect(throws: DecryptionError.self) {
            try FileCrypto.decrypt(vectorBody, key: vectorKey, bits: bits, digest: .md5)
        }
        #expect(error?.kind == .unsupportedKeyLength)
        #expect(error?.message == "CFG_FILE_KEY_LENGTH is \(bits): expected 128, 192 or 256")
        #expect(error?.description == error?.message)
        let encryptError = #expect(throws: DecryptionError.self) {
            try FileCrypto.encrypt(vectorPlain, key: vectorKey, bits: bits, digest: .md5)
        }
        #expect(encryptError?.kind == .unsupportedKeyLength)
    }

    // MARK: - Detection and keys

    @Test("looksEncrypted: the U2FsdGVkX1 prefix after optional whitespace")
    func detection() {
        #expect(FileCrypto.looksEncrypted(vectorBody))
        #expect(FileCrypto.looksEncrypted(Array(" \r\n\tU2FsdGVkX18BAgME".utf8)))
        #expect(!FileCrypto.looksEncrypted(vectorPlain))
        #expect(!FileCrypto.looksEncrypted(Array("# Panasonic SIP Phone Standard Format File #\n".utf8)))
        #expect(!FileCrypto.looksEncrypted([]))
        #expect(!FileCrypto.looksEncrypted(Array("   \n".utf8)))
        #expect(!FileCrypto.looksEncrypted(Array("U2FsdGVk".utf8)))
        #expect(!FileCrypto.looksEncrypted(Array("x U2FsdGVkX18BAgME".utf8)))
    }

    @Test("generateKey: 32 characters of [A-Za-z0-9], fresh each time")
    func generateKey() {
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        let first = FileCrypto.generateKey()
        let second = FileCrypto.generateKey()
        #expect(first.count == 32)
        #expect(first.utf8.count == 32)
        #expect(first.allSatisfy(alphabet.contains))
        #expect(second.allSatisfy(alphabet.contains))
        #expect(first != second)
        // Every character of the alphabet shows up over enough keys (a biased or truncated alphabet would not).
        let seen = Set((0..<200).flatMap { _ in FileCrypto.generateKey() })
        #expect(seen == alphabet)
    }

    // MARK: - Measurement (printed, never asserted)

    @Test("decrypt throughput of a 120 KB file (printed)")
    func throughput() throws {
        let key = FileCrypto.generateKey()
        let plain = config(size: 120 * 1024)
        let body = try FileCrypto.encrypt(plain, key: key, bits: 128, digest: .md5)
        var rounds = 0
        let clock = ContinuousClock()
        let start = clock.now
        while clock.now - start < .milliseconds(500) {
            _ = try FileCrypto.decrypt(body, key: key, bits: 128, digest: .md5)
            rounds += 1
        }
        let seconds = (clock.now - start) / .seconds(1)
        let megabytes = Double(body.count * rounds) / 1_000_000
        print(
            "FileCrypto.decrypt: \(rounds) x \(body.count)-byte body (120 KB plaintext) in "
                + String(format: "%.3f s = %.1f MB/s of encrypted file", seconds, megabytes / seconds)
        )
    }
}
