// Shared fixtures: a served directory with known files behind a real nginx.

import Foundation
import Testing
import VPhoneTesting

@testable import Transport

/// The User-Agent of a KX-UTG300 (spec §1), with characters a sloppy server or log would mangle.
let phoneAgent = "Panasonic_KX-UTG300/03.210 (0080f0c571eb)"

/// The initial file of spec §5's example, byte for byte.
let helloBody = Array("<PANASIPPhoneConfig>\r\n</PANASIPPhoneConfig>\r\n".utf8)

/// A temporary directory of test files served by its own nginx.
final class Site: @unchecked Sendable {
    let root: String
    let server: NginxServer

    /// - Parameters:
    ///   - extraConfig: nginx `server` block lines; receives the root directory.
    ///   - files: extra files (path relative to the root -> contents) besides the standard ones.
    init(tls: Bool = false, files: [String: [UInt8]] = [:], extraConfig: (String) -> String = { _ in "" }) throws {
        root = try makeDirectory("vphone-site")
        var all: [String: [UInt8]] = [
            "hello.cfg": helloBody,
            "big.bin": pattern(100 * 1024),
            "slow.bin": pattern(200 * 1024),
        ]
        for index in 0..<10 { all["f\(index).cfg"] = Array("file \(index) ".utf8) + pattern(1000 + index * 37) }
        all.merge(files) { _, new in new }
        for (path, contents) in all {
            let full = root + "/" + path
            try FileManager.default.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent,
                withIntermediateDirectories: true
            )
            #expect(FileManager.default.createFile(atPath: full, contents: Data(contents)))
        }
        server = try NginxServer(root: root, tls: tls, extraConfig: extraConfig(root))
    }

    deinit {
        server.stop()
        try? FileManager.default.removeItem(atPath: root)
    }

    func url(_ path: String) -> String { server.baseURL + "/" + path }
    func tlsURL(_ path: String) -> String { (server.tlsBaseURL ?? "https://unset") + "/" + path }

    /// The access log once it has at least `count` lines.
    func log(atLeast count: Int) throws -> [String] { try server.accessLog(atLeast: count) }
}

/// Runs `body` on a thread of its own and returns its result. Starting a server blocks until it is ready;
/// doing that on one of the few threads that run every test's awaits would stall the other tests (and
/// their timing assertions) while it waits.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// `count` bytes of a repeating, position-dependent pattern.
func pattern(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) } }

/// A new temporary directory holding `files` (path relative to it -> contents), for a server's root.
/// Modes are the defaults (0755 directories, 0644 files), so every daemon's user can read them.
func makeServedDirectory(_ prefix: String, files: [String: [UInt8]]) throws -> String {
    let root = try makeDirectory(prefix)
    for (path, contents) in files {
        let full = root + "/" + path
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        try #require(FileManager.default.createFile(atPath: full, contents: Data(contents)))
    }
    return root
}

func makeDirectory(_ prefix: String) throws -> String {
    let path = NSTemporaryDirectory() + "/\(prefix)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func request(_ url: String, _ configure: (inout FetchRequest) -> Void = { _ in }) -> FetchRequest {
    var request = FetchRequest(url: url, userAgent: phoneAgent)
    configure(&request)
    return request
}

extension Result where Failure == FetchFailure {
    /// The failure, or nil (and a recorded issue) on success.
    func failure(sourceLocation: SourceLocation = #_sourceLocation) -> FetchFailure? {
        switch self {
        case .success(let value):
            Issue.record("expected a failure, got \(value)", sourceLocation: sourceLocation)
            return nil
        case .failure(let failure):
            return failure
        }
    }

    /// The value, or nil (and a recorded issue) on failure.
    func success(sourceLocation: SourceLocation = #_sourceLocation) -> Success? {
        switch self {
        case .success(let value):
            return value
        case .failure(let failure):
            Issue.record("expected success, got \(failure)", sourceLocation: sourceLocation)
            return nil
        }
    }
}

/// The `$connection` serial (second-to-last field) of an access log line.
func connectionSerial(_ line: String) -> Int? {
    let fields = line.split(separator: " ")
    guard fields.count >= 2 else { return nil }
    return Int(fields[fields.count - 2])
}

/// The `$body_bytes_sent` of an access log line (the field after the status).
func bodyBytesSent(_ line: String) -> Int? {
    guard let close = line.lastIndex(of: "\""), let open = line[..<close].lastIndex(of: "\"") else { return nil }
    // ... "GET /x HTTP/1.1" 200 45 "agent" c r: the fields before the agent's opening quote.
    let before = line[..<open].split(separator: " ")
    guard before.count >= 1 else { return nil }
    return Int(before[before.count - 1])
}

/// The OS name of the calling thread (what debuggers, `top -H` and perf show).
func currentThreadName() -> String {
    #if os(Linux)
    let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
    return comm.trimmingCharacters(in: .newlines)
    #else
    return Thread.current.name ?? ""
    #endif
}
