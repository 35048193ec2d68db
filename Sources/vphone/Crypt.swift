import ArgumentParser
import Crypto
import Foundation

/// `vphone crypt`: make and read the phone's encrypted configuration files (spec §5, admin guide §2.6), byte for byte
/// what `openssl enc -aes-N-cbc -a -salt -md D -pass pass:KEY` makes and reads.
struct Crypt: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encrypt or decrypt configuration files the way the phone reads them, or make a key.",
        discussion: """
            Files are what `openssl enc -aes-128-cbc -a -salt -md md5 -pass pass:KEY` makes (also -aes-192-cbc and \
            -aes-256-cbc): base64 of "Salted__", an 8-byte salt and the AES-CBC ciphertext. They start with \
            U2FsdGVkX1. The key is CFG_FILE_KEY, the key length CFG_FILE_KEY_LENGTH (128, 192 or 256; default 128).

            The key derivation digest defaults to md5, which is what the phone expects. `openssl enc` on OpenSSL 1.1.0 \
            and later defaults to sha256, so the guide's command as printed makes files the phone refuses: add \
            `-md md5` when making fixtures with openssl.

            The key comes from --key-file PATH or --key KEY (visible to other users in `ps`), else from the \
            VPHONE_FILE_KEY environment variable. vphone never prints it.

            Exit codes: 0 success; 64 bad command line; 65 the input cannot be decrypted (the reason goes to \
            standard error).
            """,
        subcommands: [Encrypt.self, Decrypt.self, Keygen.self]
    )

    struct Encrypt: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Encrypt FILE (or standard input) to standard output, as the provisioning server would.",
            discussion: """
                Same bytes as `openssl enc -aes-BITS-cbc -a -salt -md MD -pass pass:KEY` with a fresh random salt: \
                base64 in 64-column lines.
                """
        )
        @OptionGroup var keyOptions: FileKeyOptions
        @OptionGroup var cipher: CipherOptions
        @Argument(help: "The plain file to encrypt (default: standard input).") var file: String?

        func run() throws {
            let key = try keyOptions.resolve()
            let plain = try readInput(file)
            let body: [UInt8]
            do {
                body = try FileCrypto.encrypt(plain, key: key, bits: cipher.bits, digest: cipher.md)
            } catch {
                fail("cannot encrypt \(file ?? "standard input"): \(error.message)")
                throw Exit.data
            }
            FileHandle.standardOutput.write(Data(body))
        }
    }

    struct Decrypt: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decrypt FILE (or standard input) to standard output, as the phone would.",
            discussion: """
                Same as `openssl enc -d -aes-BITS-cbc -a -md MD -pass pass:KEY`, with the phone's diagnosis when it \
                fails (exit 65): wrong key, the other key-derivation digest, cut off, not base64, not openssl output.
                """
        )
        @OptionGroup var keyOptions: FileKeyOptions
        @OptionGroup var cipher: CipherOptions
        @Argument(help: "The encrypted file, e.g. 0080F0C571EB.cfg.enc (default: standard input).") var file: String?

        func run() throws {
            let key = try keyOptions.resolve()
            let body = try readInput(file)
            let plain: [UInt8]
            do {
                plain = try FileCrypto.decrypt(body, key: key, bits: cipher.bits, digest: cipher.md)
            } catch {
                fail("cannot decrypt \(file ?? "standard input"): \(error.message)")
                throw Exit.data
            }
            FileHandle.standardOutput.write(Data(plain))
        }
    }

    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a fresh 32-character key for CFG_FILE_KEY ([A-Za-z0-9], from the OpenSSL RNG).",
            discussion: "Save it where only the server can read it: `vphone crypt keygen > key && chmod 600 key`."
        )

        func run() {
            print(FileCrypto.generateKey())
        }
    }
}

extension KDFDigest: ExpressibleByArgument {}

/// `--bits` and `--md`: which `openssl enc` cipher and key-derivation digest.
struct CipherOptions: ParsableArguments {
    @Option(help: "AES key length, as CFG_FILE_KEY_LENGTH: 128 (the phone's default), 192 or 256.")
    var bits: Int = 128

    @Option(
        help: """
            Key-derivation digest: md5 (what the phone expects) or sha256 (what `openssl enc` uses by default on \
            OpenSSL >= 1.1: make fixtures with `-md md5`).
            """
    )
    var md: KDFDigest = .md5

    func validate() throws {
        guard [128, 192, 256].contains(bits) else {
            throw ValidationError("--bits must be 128, 192 or 256 (CFG_FILE_KEY_LENGTH), got \(bits)")
        }
    }
}

/// The file key, from wherever it is least exposed; it is never printed.
struct FileKeyOptions: ParsableArguments {
    static let environmentVariable = "VPHONE_FILE_KEY"

    @Option(help: "The key (CFG_FILE_KEY). Other users see it in `ps`: prefer --key-file or VPHONE_FILE_KEY.")
    var key: String?

    @Option(help: "Read the key from this file (trailing newlines ignored), e.g. one made by `vphone crypt keygen`.")
    var keyFile: String?

    func validate() throws {
        if key != nil && keyFile != nil {
            throw ValidationError("--key and --key-file exclude each other: give the key once")
        }
        if key == nil && keyFile == nil && ProcessInfo.processInfo.environment[Self.environmentVariable] == nil {
            throw ValidationError("give the key: --key-file PATH, \(Self.environmentVariable)=KEY, or --key KEY")
        }
        if key?.isEmpty == true { throw ValidationError("--key is empty: give the CFG_FILE_KEY value") }
    }

    /// The key; an unreadable or empty key file, or an empty VPHONE_FILE_KEY, ends the command with exit 64.
    func resolve() throws -> String {
        if let key { return key }
        if let keyFile {
            guard let data = FileManager.default.contents(atPath: keyFile) else {
                fail("cannot read the key file \(keyFile): check the path and its permissions")
                throw Exit.usage
            }
            var text = String(decoding: data, as: UTF8.self)
            while text.last == "\n" || text.last == "\r" || text.last == "\r\n" { text.removeLast() }
            guard !text.isEmpty else {
                fail("the key file \(keyFile) is empty: put the CFG_FILE_KEY value in it (vphone crypt keygen)")
                throw Exit.usage
            }
            return text
        }
        let value = ProcessInfo.processInfo.environment[Self.environmentVariable] ?? ""
        guard !value.isEmpty else {
            fail("\(Self.environmentVariable) is empty: set it to the CFG_FILE_KEY value")
            throw Exit.usage
        }
        return value
    }
}

/// The bytes of `path`, or of standard input when nil; an unreadable file ends the command with exit 64.
private func readInput(_ path: String?) throws -> [UInt8] {
    guard let path else { return Array(FileHandle.standardInput.readDataToEndOfFile()) }
    guard let data = FileManager.default.contents(atPath: path) else {
        fail("cannot read \(path): no such readable file")
        throw Exit.usage
    }
    return Array(data)
}
