import Foundation

/// The real `openssl` command line, the reference every result here is compared with (spec §5).
enum OpenSSLCommand {
    static let path = "/usr/bin/openssl"

    struct Failed: Error, CustomStringConvertible {
        var arguments: [String]
        var status: Int32
        var stderr: String
        var description: String { "openssl \(arguments.joined(separator: " ")) exited \(status): \(stderr)" }
    }

    /// Runs `openssl arguments -in IN -out OUT` with `input` in IN; returns OUT. Files, not pipes, so that a
    /// large input cannot deadlock against a full pipe.
    static func run(_ arguments: [String], input: [UInt8]) throws -> [UInt8] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vphone-crypto-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let inURL = directory.appendingPathComponent("in")
        let outURL = directory.appendingPathComponent("out")
        try Data(input).write(to: inURL)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments + ["-in", inURL.path, "-out", outURL.path]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failed(
                arguments: arguments,
                status: process.terminationStatus,
                stderr: String(decoding: stderr, as: UTF8.self)
            )
        }
        return Array(try Data(contentsOf: outURL))
    }

    /// `openssl enc -aes-N-cbc -a -salt -md D -pass pass:KEY`.
    static func encrypt(_ plain: [UInt8], key: String, bits: Int, digest: String) throws -> [UInt8] {
        try run(["enc", "-aes-\(bits)-cbc", "-a", "-salt", "-md", digest, "-pass", "pass:\(key)"], input: plain)
    }

    /// `openssl enc -d -aes-N-cbc -a -md D -pass pass:KEY`.
    static func decrypt(_ body: [UInt8], key: String, bits: Int, digest: String) throws -> [UInt8] {
        try run(["enc", "-d", "-aes-\(bits)-cbc", "-a", "-md", digest, "-pass", "pass:\(key)"], input: body)
    }
}
