import Foundation
import PhoneCore
import Testing

@testable import Flash

/// The file key (spec §5) and the root certificates of `<Certs>` in flash.
@Suite("Flash store: the file key and root certificates")
struct FlashKeyAndCertificateTests {
    let directory: TemporaryDirectory
    let path: String

    init() throws {
        directory = try TemporaryDirectory()
        path = directory.file("phone.flash")
    }

    static let key = FileKey(key: "12341234abcdabcd12341234abcdabcd", installedAt: at(10), sourceURL: "http://p/s.cfg")
    static let rotated = FileKey(
        key: "ffffeeeeddddccccbbbbaaaa99998888",
        installedAt: at(20),
        sourceURL: "http://p/t.cfg"
    )

    static func certificate(_ slot: Int, _ url: String, seed: UInt8 = 0) -> RootCertificate {
        RootCertificate(slot: slot, url: url, pem: testPEM + body(50, seed: seed), savedAt: at(Int64(slot) * 100))
    }

    @Test func keyIsInstalledReplacedAndClearedAcrossReopens() throws {
        var store = try FlashStore.create(at: path, identity: testIdentity)
        #expect(try store.load().fileKey == nil)
        var changes = FlashChanges()
        changes.fileKey = .install(Self.key)
        try store.apply(changes)
        store.close()
        store = try FlashStore.open(at: path)
        #expect(try store.load().fileKey == Self.key)

        changes.fileKey = .install(Self.rotated)  // spec §5: a new plain standard file replaces the key
        try store.apply(changes)
        #expect(try store.load().fileKey == Self.rotated)

        // A change without a key change leaves the key alone.
        var other = FlashChanges()
        other.bootCount = 4
        try store.apply(other)
        #expect(try store.load().fileKey == Self.rotated)

        changes.fileKey = .clear
        try store.apply(changes)
        store.close()
        #expect(try FlashStore.open(at: path).load().fileKey == nil)
        #expect(try rawInteger(path, "SELECT count(*) FROM file_key") == 0)
    }

    @Test func rootCertificatesAreUpsertedBySlotAndRemoved() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        var changes = FlashChanges()
        changes.rootCertificates = [Self.certificate(1, "a"), Self.certificate(2, "b"), Self.certificate(3, "c")]
        try store.apply(changes)
        #expect(try store.load().rootCertificates.count == 3)

        changes = FlashChanges()
        changes.rootCertificates = [Self.certificate(2, "b2", seed: 1), Self.certificate(2, "b3", seed: 2)]
        changes.removeRootCertificates = [3, 1, 3]
        try store.apply(changes)
        store.close()
        let certificates = try FlashStore.open(at: path).load().rootCertificates
        #expect(certificates == [2: Self.certificate(2, "b3", seed: 2)])
    }

    @Test func aSlotBothSetAndRemovedEndsUpEmptyAsInApplying() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        var expected = try store.load()
        var changes = FlashChanges()
        changes.rootCertificates = [Self.certificate(1, "a"), Self.certificate(2, "b")]
        changes.removeRootCertificates = [2]
        changes.fileKey = .install(Self.key)
        var clearing = FlashChanges()
        clearing.fileKey = .clear
        clearing.rootCertificates = [Self.certificate(3, "c")]
        clearing.removeRootCertificates = [1]
        for change in [changes, clearing, everyPartChanges(), clearing] {
            try store.apply(change)
            expected = expected.applying(change)
            #expect(try store.load() == expected)
        }
        #expect(expected.rootCertificates.keys.sorted() == [3])
    }

    @Test func factoryResetClearsTheKeyAndCertificatesAndLeavesNoKeyInTheFile() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        var changes = everyPartChanges()
        changes.fileKey = .install(FileKey(key: "key-that-must-vanish-0123456789", installedAt: at(1), sourceURL: "u"))
        try store.apply(changes)
        try store.factoryReset(event: LogEntry(at: at(2), boot: 1, kind: "factory-reset", message: "Reset"))
        let snapshot = try store.load()
        #expect(snapshot.fileKey == nil)
        #expect(snapshot.rootCertificates.isEmpty)
        store.close()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(bytes.range(of: Data("key-that-must-vanish-0123456789".utf8)) == nil)
        #expect(bytes.range(of: Data("MIIBszCCAVmgAwIBAgIU".utf8)) == nil)
    }

    @Test func anImageWithoutTheNewTablesIsRefusedAsDamaged() throws {
        try FlashStore.create(at: path, identity: testIdentity).close()
        try rawSQL(path, "DROP TABLE root_certificates")
        expectFlashError(.corrupt, path: path, mentioning: ["root_certificates"]) { _ = try FlashStore.open(at: path) }
    }

    @Test func theSchemaRefusesASecondKeyRowAndASlotOutsideOneToThree() throws {
        try FlashStore.create(at: path, identity: testIdentity).close()
        #expect(throws: FlashError.self) {
            try rawSQL(path, "INSERT INTO file_key (id, key, installed_at, source_url) VALUES (2, 'k', 0, '')")
        }
        #expect(throws: FlashError.self) {
            try rawSQL(path, "INSERT INTO root_certificates (slot, url, pem, saved_at) VALUES (0, 'u', x'', 0)")
        }
    }
}
