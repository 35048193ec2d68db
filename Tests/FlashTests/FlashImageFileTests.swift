import Foundation
import PhoneCore
import Testing

@testable import Flash

@Suite("Flash image file: creation, refusals, damage")
struct FlashImageFileTests {
    let directory: TemporaryDirectory
    let path: String

    init() throws {
        directory = try TemporaryDirectory()
        path = directory.file("phone.flash")
    }

    /// An image with some weight: three 8 KB files and a hundred events.
    func makeImage() throws {
        let store = try FlashStore.create(at: path, identity: testIdentity)
        var changes = everyPartChanges()
        changes.savedFiles = FileKind.deviceFiles.map {
            SavedFile(kind: $0, url: "u", body: body(8192, seed: 3), savedAt: at(1))
        }
        changes.events += (0..<100).map { LogEntry(at: at(Int64($0)), boot: 1, kind: "k", message: "event \($0)") }
        try store.apply(changes)
        store.close()
    }

    // MARK: - create

    @Test func createRefusesAnExistingFileAndLeavesItAlone() throws {
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: path))
        expectFlashError(.alreadyExists, path: path) { _ = try FlashStore.create(at: path, identity: testIdentity) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data("keep me".utf8))

        try FileManager.default.removeItem(atPath: path)
        try makeImage()
        expectFlashError(.alreadyExists, path: path) { _ = try FlashStore.create(at: path, identity: testIdentity) }
        #expect(try FlashStore.open(at: path).load().parameters.count == 4)
    }

    @Test func createNamesALinkThatPointsNowhere() throws {
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: directory.file("gone.flash"))
        expectFlashError(.alreadyExists, path: path, mentioning: ["symbolic link to", "gone.flash", "does not exist"]) {
            _ = try FlashStore.create(at: path, identity: testIdentity)
        }
    }

    @Test func createMakesMode0600AndMissingParentDirectories() throws {
        let nested = directory.file("fleet/site-a/phone.flash")
        let store = try FlashStore.create(at: nested, identity: testIdentity)
        try store.apply(everyPartChanges())
        let attributes = try FileManager.default.attributesOfItem(atPath: nested)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(try store.load().identity == testIdentity)
    }

    @Test func createReportsAnUnwritableDirectory() throws {
        try Data().write(to: URL(fileURLWithPath: directory.file("plain-file")))
        let inside = directory.file("plain-file/phone.flash")
        expectFlashError(.io, path: inside, mentioning: ["plain-file"]) {
            _ = try FlashStore.create(at: inside, identity: testIdentity)
        }
    }

    // MARK: - open refuses what is not a good image

    @Test func openRefusesAMissingFile() {
        expectFlashError(.notFound, path: path) { _ = try FlashStore.open(at: path) }
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func openRefusesADirectory() throws {
        expectFlashError(.io, path: directory.path, mentioning: ["directory"]) {
            _ = try FlashStore.open(at: directory.path)
        }
    }

    /// /dev/null reads as empty, but "delete it" is not the advice to give for a device.
    @Test(arguments: ["/dev/null", "fifo"])
    func openRefusesWhatIsNotARegularFile(name: String) throws {
        let special = name.hasPrefix("/") ? name : directory.file(name)
        if !name.hasPrefix("/") { #expect(mkfifo(special, 0o600) == 0) }
        expectFlashError(.notSQLite, path: special, mentioning: ["not a regular file"]) {
            _ = try FlashStore.open(at: special, readOnly: true)
        }
    }

    @Test func openRefusesAnEmptyFile() throws {
        try Data().write(to: URL(fileURLWithPath: path))
        expectFlashError(.notSQLite, path: path, mentioning: ["empty"]) { _ = try FlashStore.open(at: path) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).isEmpty)
    }

    @Test(arguments: [1, 5, 100, 511, 512, 600, 16_384])
    func openRefusesRandomBytes(count: Int) throws {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        expectFlashError(.notSQLite, path: path) { _ = try FlashStore.open(at: path) }
        expectFlashError(.notSQLite, path: path) { _ = try FlashStore.open(at: path, readOnly: true) }
    }

    @Test func openRefusesARandomTailAfterTheSQLiteMagic() throws {
        let bytes = Array("SQLite format 3\0".utf8) + (0..<8_000).map { UInt8(truncatingIfNeeded: $0 &* 131) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        expectFlashError(.notSQLite, path: path) { _ = try FlashStore.open(at: path) }
    }

    @Test func openRefusesATruncatedImage() throws {
        try makeImage()
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(whole.count > 8 * 4096)
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: path))
        expectFlashError(.corrupt, path: path, mentioning: ["damaged", "restore it from a copy"]) {
            _ = try FlashStore.open(at: path)
        }
        expectFlashError(.corrupt, path: path) { _ = try FlashStore.open(at: path, readOnly: true) }
    }

    @Test func openRefusesAPlainSQLiteDatabase() throws {
        try rawSQL(path, "CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('hello');")
        expectFlashError(.notAnImage, path: path, mentioning: ["is an SQLite database but not a vphone flash image"]) {
            _ = try FlashStore.open(at: path)
        }
        // An empty SQLite database made by the CLI too.
        let other = directory.file("vacuumed.db")
        try rawSQL(other, "VACUUM")
        expectFlashError(.notAnImage, path: other) { _ = try FlashStore.open(at: other) }
    }

    @Test func openRefusesAnImageFromANewerVphone() throws {
        try makeImage()
        try rawSQL(path, "PRAGMA user_version = 3")
        expectFlashError(
            .newerSchema,
            path: path,
            mentioning: ["newer vphone (schema 3)", "up to schema 2", "upgrade vphone"]
        ) {
            _ = try FlashStore.open(at: path)
        }
    }

    @Test func aSchema1ImageIsReadAsItIsAndStampedSchema2WhenOpenedToWrite() throws {
        try makeImage()
        let before = try FlashStore.open(at: path, readOnly: true)
        let snapshot = try before.load()
        before.close()
        try rawSQL(path, "PRAGMA user_version = 1")
        let readOnly = try FlashStore.open(at: path, readOnly: true)
        #expect(try readOnly.load() == snapshot)
        readOnly.close()
        #expect(try rawInteger(path, "PRAGMA user_version") == 1)
        let store = try FlashStore.open(at: path)
        #expect(try store.load() == snapshot)
        store.close()
        #expect(try rawInteger(path, "PRAGMA user_version") == 2)
    }

    @Test func openRefusesAnImageFromAnOlderVphone() throws {
        try makeImage()
        try rawSQL(path, "PRAGMA user_version = 0")
        expectFlashError(.olderSchema, path: path, mentioning: ["older vphone (schema 0)"]) {
            _ = try FlashStore.open(at: path)
        }
    }

    @Test func openRefusesAnImageWithATableMissing() throws {
        try makeImage()
        try rawSQL(path, "DROP TABLE timers")
        expectFlashError(.corrupt, path: path, mentioning: ["timers"]) { _ = try FlashStore.open(at: path) }
    }

    @Test func openNeverRewritesWhatItRefuses() throws {
        try rawSQL(path, "PRAGMA user_version = 7")
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        expectFlashError(.notAnImage, path: path) { _ = try FlashStore.open(at: path) }
        expectFlashError(.notAnImage, path: path) { _ = try FlashStore.openOrCreate(at: path, identity: testIdentity) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }

    // MARK: - Damaged content

    /// A hand edit (or damage) that leaves SQLite happy but a value vphone cannot read, and words the error
    /// must contain.
    static let damage: [(sql: String, words: [String])] = [
        ("UPDATE saved_files SET kind = 'firmware' WHERE kind = 'master'", ["saved_files", "kind", "'firmware'"]),
        ("UPDATE saved_files SET saved_at = 'yesterday'", ["saved_files", "saved_at", "yesterday"]),
        ("UPDATE identity SET mac = 'not-a-mac'", ["identity", "mac", "not-a-mac", "MAC"]),
        ("UPDATE identity SET created_at = 1.5", ["identity", "created_at", "1.5"]),
        ("DELETE FROM identity", ["identity", "no row"]),
        ("DELETE FROM state", ["state", "no row"]),
        ("UPDATE parameters SET source = 'cloud'", ["parameters", "source", "'cloud'"]),
        ("UPDATE timers SET kind = 'alarm' WHERE kind = 'cyclic'", ["timers", "kind", "alarm"]),
        ("UPDATE file_status SET outcome = 'maybe' WHERE kind = 'master'", ["file_status", "outcome", "maybe"]),
        ("UPDATE events SET level = 'panic'", ["events", "level", "panic"]),
        ("UPDATE events SET fields = '[1,2]'", ["events", "fields", "[1,2]", "JSON object"]),
        ("UPDATE events SET fields = '{\"n\": 5}'", ["events", "fields", "JSON object"]),
        ("UPDATE events SET boot = X'00'", ["events", "boot", "blob"]),
        ("UPDATE file_key SET installed_at = 'soon'", ["file_key", "installed_at", "soon"]),
        ("UPDATE root_certificates SET url = X'07'", ["root_certificates", "url", "blob"]),
    ]

    @Test(arguments: 0..<Self.damage.count)
    func unreadableValueIsCorruptNamingTableColumnAndValue(index: Int) throws {
        let (sql, words) = Self.damage[index]
        try makeImage()
        try rawSQL(path, sql)
        expectFlashError(.corrupt, path: path, mentioning: words) {
            let store = try FlashStore.open(at: path)
            _ = try store.load()
            _ = try store.events()
        }
    }

    @Test func integrityCheckPassesAGoodImageAndFailsADamagedOne() throws {
        try makeImage()
        try FlashStore.open(at: path).integrityCheck()

        // Scribble over the middle of the file (pages of the saved files and events), keeping the header.
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        let size = try handle.seekToEnd()
        try handle.seek(toOffset: size / 2)
        try handle.write(contentsOf: Data(repeating: 0xA5, count: 6000))
        try handle.close()
        expectFlashError(.corrupt, path: path, mentioning: ["damaged"]) {
            let store = try FlashStore.open(at: path)
            try store.integrityCheck()
        }
    }
}
