import Foundation
import PhoneCore
import Testing

@testable import Flash

/// A directory under the system's temporary directory, removed when the value goes away.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "vphone-flash-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }
}

let testMAC = MAC(value: 0x0080_F0C5_71EB)
let testIdentity = Identity(mac: testMAC, model: "KX-UTG300", firmware: "03.210", createdAt: at(1_000))

func at(_ milliseconds: Int64) -> PhoneTime { PhoneTime(millisecondsSinceEpoch: milliseconds) }

/// Bytes that differ from one call to the next, for file bodies.
func body(_ count: Int, seed: UInt8 = 0) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) &+ seed } }

/// Changes touching every part of flash, with awkward values: empty strings, an empty body, quotes and newlines.
func everyPartChanges(boot: Int = 1) -> FlashChanges {
    var changes = FlashChanges()
    changes.bootCount = boot
    changes.savedFiles = [
        SavedFile(kind: .initial, url: "http://prov.example/init.cfg", body: body(300), savedAt: at(2_000)),
        SavedFile(kind: .master, url: "tftp://10.0.0.1/master.xml", body: [], savedAt: at(2_001)),
        SavedFile(
            kind: .product,
            url: "https://prov.example/KX-UTG300.cfg",
            body: body(8192, seed: 7),
            savedAt: at(2_002)
        ),
    ]
    changes.parameters = [
        "SIP_AUTHID_1": Parameter(name: "SIP_AUTHID_1", value: "1001", source: .standard, perm: "!RW", access: "admin"),
        "SIP_PASS_1": Parameter(name: "SIP_PASS_1", value: "s3cr\"et'\n", source: .master),
        "CFG_RESYNC_TIME": Parameter(name: "CFG_RESYNC_TIME", value: "", source: .local),
        "DISPLAY_NAME_1": Parameter(name: "DISPLAY_NAME_1", value: "Réception ☎", source: .product, perm: "R"),
    ]
    changes.setLocalEdits = [
        LocalEdit(name: "DISPLAY_NAME_1", value: "Desk", editedAt: at(3_000)),
        LocalEdit(name: "TIME_ZONE", value: "", editedAt: at(3_001)),
    ]
    changes.armTimers = [.cyclic: at(604_800_000), .resync: at(-5)]
    changes.fileStatus = [
        FileStatus(
            kind: .initial,
            url: "http://prov.example/init.cfg",
            outcome: .downloaded,
            reason: "",
            at: at(4_000)
        ),
        FileStatus(kind: .standard, url: "", outcome: .skipped, reason: "", at: at(4_001)),
        FileStatus(kind: .product, url: "https://x/p", outcome: .fellBack, reason: "HTTP 404", at: at(4_002)),
        FileStatus(kind: .master, url: "https://x/m", outcome: .failed, reason: "timeout after 30 s", at: at(4_003)),
    ]
    changes.events = [
        LogEntry(at: at(5_000), boot: boot, level: .info, kind: "state", message: "Powered on"),
        LogEntry(
            at: at(5_001),
            boot: boot,
            level: .warning,
            kind: "fetch-failed",
            message: "Product file failed",
            fields: ["url": "https://x/p", "status": "404", "reason": "quote \" backslash \\ tab \t nul \u{0} ☎"]
        ),
        LogEntry(at: at(5_002), boot: boot, level: .error, kind: "", message: "", fields: ["": ""]),
        LogEntry(
            at: at(5_003),
            boot: boot,
            level: .debug,
            kind: "timer",
            message: "Armed",
            fields: ["z": "1", "a": "2"]
        ),
    ]
    changes.fileKey = .install(
        FileKey(
            key: "12341234abcdabcd12341234abcdabcd",
            installedAt: at(6_000),
            sourceURL: "http://prov.example/std.cfg"
        )
    )
    changes.rootCertificates = [
        RootCertificate(slot: 1, url: "https://prov.example/ca1.pem", pem: testPEM, savedAt: at(6_001)),
        RootCertificate(slot: 3, url: "tftp://10.0.0.1/ca3.pem", pem: [], savedAt: at(6_002)),
    ]
    return changes
}

/// A PEM certificate's shape (the content is not a real certificate: flash stores it as it came).
let testPEM = Array("-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n".utf8)

/// What `load()` must return after `everyPartChanges()` on a new image.
func snapshotAfter(_ changes: FlashChanges, identity: Identity = testIdentity) -> FlashSnapshot {
    FlashSnapshot(
        identity: identity,
        bootCount: changes.bootCount ?? 0,
        savedFiles: Dictionary(changes.savedFiles.map { ($0.kind, $0) }) { _, last in last },
        parameters: changes.parameters ?? [:],
        localEdits: Dictionary(changes.setLocalEdits.map { ($0.name, $0) }) { _, last in last },
        timers: changes.armTimers,
        fileStatus: Dictionary(changes.fileStatus.map { ($0.kind, $0) }) { _, last in last },
        fileKey: {
            if case .install(let key) = changes.fileKey { return key }
            return nil
        }(),
        rootCertificates: Dictionary(changes.rootCertificates.map { ($0.slot, $0) }) { _, last in last }
    )
}

/// A second, raw connection to an image: what a hand edit with the sqlite3 CLI (or damage) would do.
func rawSQL(_ path: String, _ sql: String) throws {
    let connection = try SQLiteConnection(path: path, mode: .readWriteCreate)
    defer { connection.close() }
    try connection.execute(sql)
}

func rawInteger(_ path: String, _ sql: String) throws -> Int64 {
    let connection = try SQLiteConnection(path: path, mode: .readOnly)
    defer { connection.close() }
    var value: Int64 = 0
    try connection.query(sql, table: "test") { (row) throws(FlashError) in value = try row.int64(0) }
    return value
}

/// Expects `body` to throw a `FlashError` of `kind` whose message names the file and contains `words`.
func expectFlashError(
    _ kind: FlashError.Kind,
    path: String,
    mentioning words: [String] = [],
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    let error = #expect(throws: FlashError.self, sourceLocation: sourceLocation) { try body() }
    guard let error else { return }
    #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
    #expect(error.path == path, sourceLocation: sourceLocation)
    #expect(error.message.contains(path), "\(error)", sourceLocation: sourceLocation)
    #expect(error.description == error.message, sourceLocation: sourceLocation)
    for word in words {
        #expect(error.message.contains(word), "'\(word)' missing from: \(error)", sourceLocation: sourceLocation)
    }
}

/// The bundled KX-UTG300 profile (its `secrets` decide what an export masks).
let utg300: DeviceProfile = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    do {
        let data = try Data(contentsOf: root.appendingPathComponent("Profiles/KX-UTG300.json"))
        return try JSONDecoder().decode(DeviceProfile.self, from: data)
    } catch {
        fatalError("cannot read Profiles/KX-UTG300.json: \(error)")
    }
}()

/// The repository's `examples/prov` directory.
let examplesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("examples/prov").path

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// Expects `body` to throw a `FlashError` of `kind` whose message contains `words`.
func expectFlashError(
    _ kind: FlashError.Kind,
    mentioning words: [String],
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    let error = #expect(throws: FlashError.self, sourceLocation: sourceLocation) { try body() }
    guard let error else { return }
    #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
    for word in words {
        #expect(error.message.contains(word), "'\(word)' missing from: \(error)", sourceLocation: sourceLocation)
    }
}
