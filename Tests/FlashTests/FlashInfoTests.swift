import Foundation
import PhoneCore
import Testing

@testable import Flash

@Suite("Flash info")
struct FlashInfoTests {
    let directory: TemporaryDirectory

    init() throws { directory = try TemporaryDirectory() }

    @Test func aFreshImage() throws {
        let path = directory.file("fresh.flash")
        let info = try FlashInfo(store: FlashStore.create(at: path, identity: testIdentity))
        #expect(info.path == path)
        #expect(info.identity == testIdentity)
        #expect(info.schemaVersion == FlashStore.schemaVersion)
        #expect(info.integrity == "ok")
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int
        #expect(info.fileSize == Int64(size ?? -1))
        #expect(info.bootCount == 0)
        #expect(info.files.isEmpty)
        #expect(!info.keyPresent)
        #expect(info.rootCertificates.isEmpty)
        #expect(info.timers.isEmpty)
        #expect(info.parameterCount == 0)
        #expect(info.localEdits.isEmpty)
        #expect(info.eventCount == 0)
        #expect(info.firstEventAt == nil)
        for line in ["files none provisioned", "file key none", "timers none armed", "events 0"] {
            #expect(squeezed(info.text).contains(line), "\(line) missing from\n\(info.text)")
        }
    }

    @Test func everyField() throws {
        let path = directory.file("rich.flash")
        let store = try FlashStore.create(at: path, identity: testIdentity)
        try store.apply(richChanges())
        let info = try FlashInfo(store: FlashStore.open(at: path, readOnly: true))
        #expect(info.bootCount == 7)
        #expect(info.files.map(\.kind) == [.initial, .standard, .product, .master])
        let product = try #require(info.files.first { $0.kind == .product })
        #expect(product.status?.outcome == .fellBack)
        #expect(product.status?.reason == "HTTP 404")
        #expect(product.savedSize == secretText.count)
        #expect(info.files.first { $0.kind == .standard }?.status?.outcome == .skipped)
        #expect(info.keyPresent)
        #expect(info.keyInstalledAt == at(253_402_300_800_000))
        #expect(info.rootCertificates.map(\.slot) == [1, 3])
        #expect(info.rootCertificates.first?.size == testPEM.count)
        #expect(info.timers == [.cyclic: at(604_800_000), .resync: at(-5)])
        #expect(info.parametersBySource == [.standard: 2, .product: 1, .local: 2])
        #expect(info.parameterCount == 5)
        #expect(info.localEdits == ["ADMIN_PASS", "DISPLAY_NAME_1", "TIME_ZONE"])
        #expect(info.eventsByLevel == [.info: 1, .warning: 1, .error: 1, .debug: 1])
        #expect(info.firstEventAt == at(5_000))
        #expect(info.lastEventAt == at(5_003))

        let text = info.text
        for line in [
            "file product fell_back at 1970-01-01T00:00:04.002Z from https://x/p (HTTP 404); saved copy "
                + "\(secretText.count) bytes from 1970-01-01T00:00:00.002Z",
            "file key present (not shown), installed 253402300800000 ms since 1970",
            "root cert 1 https://prov.example/ca1.pem",
            "timer cyclic due 1970-01-08T00:00:00.000Z", "parameters 5 (local 2, standard 2, product 1)",
            "local edits 3: ADMIN_PASS, DISPLAY_NAME_1, TIME_ZONE",
            "events 4 (debug 1, info 1, warning 1, error 1), 1970-01-01T00:00:05.000Z to 1970-01-01T00:00:05.003Z",
        ] {
            #expect(squeezed(text).contains(line), "\(line) missing from\n\(text)")
        }
        let json = FlashTests.text(info.json)
        for shown in [text, json] {
            #expect(!shown.contains("key-secret-0123456789abcdef"))
            #expect(!shown.contains("param-password-33"))
            #expect(!shown.contains("edit-password-11"))
            #expect(!shown.contains("url-password"))
        }
        let object = try #require(try JSONSerialization.jsonObject(with: Data(info.json)) as? [String: Any])
        #expect((object["fileKey"] as? [String: Any])?["present"] as? Bool == true)
        #expect((object["parameters"] as? [String: Any])?["count"] as? Int == 5)
        #expect((object["events"] as? [String: Any])?["count"] as? Int == 4)
        #expect(object["integrity"] as? String == "ok")
    }

    /// A failure reason quoting a URL with credentials (a transport message) shows no password, in info or diff.
    @Test func urlCredentialsInReasonsAreRedacted() throws {
        let store = try FlashStore.create(at: directory.file("r.flash"), identity: testIdentity)
        var changes = FlashChanges()
        changes.fileStatus = [
            FileStatus(
                kind: .master,
                url: "http://id:pw-in-url@prov/m.cfg",
                outcome: .fellBack,
                reason: "HTTP 401 for http://id:pw-in-reason@prov/m.cfg",
                at: at(1)
            )
        ]
        try store.apply(changes)
        let info = try FlashInfo(store: store)
        let diff = FlashDiff.compare(FlashSnapshot(identity: testIdentity), try store.load(), isSecret: utg300.isSecret)
        for shown in [info.text, text(info.json), diff.text, text(diff.json)] {
            #expect(!shown.contains("pw-in-"), "\(shown)")
            #expect(shown.contains("http://***@prov/m.cfg"), "\(shown)")
        }
    }
}

/// Runs of spaces as one, so a check does not depend on column alignment.
func squeezed(_ text: String) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: false)
        .map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        .joined(separator: "\n")
}
