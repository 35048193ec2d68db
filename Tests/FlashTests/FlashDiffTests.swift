import Foundation
import PhoneCore
import Testing

@testable import Flash

@Suite("Flash diff")
struct FlashDiffTests {
    let directory: TemporaryDirectory

    init() throws { directory = try TemporaryDirectory() }

    /// Two images on disk, A with `richChanges()`, B with `richChanges()` then `change`.
    func pair(identity: Identity = testIdentity, _ change: FlashChanges) throws -> (FlashSnapshot, FlashSnapshot) {
        let id = UUID().uuidString
        let a = try FlashStore.create(at: directory.file("a-\(id).flash"), identity: testIdentity)
        try a.apply(richChanges())
        let b = try FlashStore.create(at: directory.file("b-\(id).flash"), identity: identity)
        try b.apply(richChanges())
        try b.apply(change)
        return (try a.load(), try b.load())
    }

    func diff(_ a: FlashSnapshot, _ b: FlashSnapshot) -> FlashDiff {
        FlashDiff.compare(a, b, isSecret: utg300.isSecret)
    }

    @Test func identicalImagesHaveNoDifference() throws {
        let (a, b) = try pair(FlashChanges())
        let d = diff(a, b)
        #expect(d.isEmpty)
        #expect(d.count == 0)
        #expect(d.text == "")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(d.json)) as? [String: Any])
        #expect(object["identical"] as? Bool == true)
    }

    @Test func identityAndBootCount() throws {
        let other = Identity(mac: testMAC, model: "KX-UTG300B", firmware: "04.000", createdAt: at(1_000))
        var change = FlashChanges()
        change.bootCount = 9
        let (a, b) = try pair(identity: other, change)
        let d = diff(a, b)
        #expect(
            d.identity == [
                FlashDiff.FieldDifference(field: "model", a: "KX-UTG300", b: "KX-UTG300B"),
                FlashDiff.FieldDifference(field: "firmware", a: "03.210", b: "04.000"),
            ]
        )
        #expect(d.bootCount == FlashDiff.BootCountDifference(a: 7, b: 9))
        #expect(d.count == 3)
        #expect(
            d.text
                == "~ identity model: KX-UTG300 -> KX-UTG300B\n~ identity firmware: 03.210 -> 04.000\n~ boot count: 7 -> 9\n"
        )
    }

    @Test func parametersAddedRemovedAndChangedWithSourcesAndSecretsMasked() throws {
        var change = FlashChanges()
        var parameters = try #require(richChanges().parameters)
        parameters["NTP_ADDR"] = Parameter(name: "NTP_ADDR", value: "pool.ntp.org", source: .master)  // added
        parameters["CFG_RESYNC_TIME"] = nil  // removed
        parameters["SIP_AUTHID_1"]?.value = "1002"  // value changed
        parameters["DISPLAY_NAME_1"]?.source = .local  // source changed
        parameters["SIP_PASS_1"]?.value = "another-password-99"  // a secret changed
        parameters["SIP_PASS_3"] = Parameter(name: "SIP_PASS_3", value: "third-password-98", source: .standard)
        // A URL's credentials are a secret too, whatever the parameter's name.
        parameters["CFG_STANDARD_FILE_PATH"] = Parameter(
            name: "CFG_STANDARD_FILE_PATH",
            value: "http://alice:url-password-97@prov.test/Config{MAC}.cfg",
            source: .initial
        )
        change.parameters = parameters
        let (a, b) = try pair(change)
        let d = diff(a, b)
        #expect(
            d.parameters.map(\.name) == [
                "CFG_RESYNC_TIME", "CFG_STANDARD_FILE_PATH", "DISPLAY_NAME_1", "NTP_ADDR", "SIP_AUTHID_1",
                "SIP_PASS_1", "SIP_PASS_3",
            ]
        )
        #expect(d.parameters.map(\.change) == [.removed, .added, .changed, .added, .changed, .changed, .added])
        let url = try #require(d.parameters.first { $0.name == "CFG_STANDARD_FILE_PATH" })
        #expect(url.b?.value == "http://***@prov.test/Config{MAC}.cfg")
        let pass = try #require(d.parameters.first { $0.name == "SIP_PASS_1" })
        #expect(pass.secret)
        #expect(pass.a?.value == "********" && pass.b?.value == "********")
        #expect(d.count == 7)
        let lines = d.text.split(separator: "\n").map(String.init)
        #expect(lines.contains("- parameter CFG_RESYNC_TIME: \"\" (local) (only in A)"))
        #expect(
            lines.contains(
                "~ parameter DISPLAY_NAME_1: \"Réception ☎\" (product, perm=R) -> \"Réception ☎\" (local, perm=R)"
            )
        )
        #expect(lines.contains("+ parameter NTP_ADDR: \"pool.ntp.org\" (master) (only in B)"))
        #expect(
            lines.contains(
                "~ parameter SIP_AUTHID_1: \"1001\" (standard, perm=!RW, access=admin) -> \"1002\" (standard, perm=!RW, access=admin)"
            )
        )
        #expect(
            lines.contains(
                "~ parameter SIP_PASS_1: \"********\" (standard) -> \"********\" (standard) (secret value changed)"
            )
        )
        for shown in [d.text, text(d.json)] {
            for secret in ["param-password-33", "another-password-99", "third-password-98", "url-password-97"] {
                #expect(!shown.contains(secret))
            }
        }
    }

    @Test func localEdits() throws {
        var change = FlashChanges()
        change.setLocalEdits = [
            LocalEdit(name: "DISPLAY_NAME_1", value: "Hall", editedAt: at(3_000)),
            LocalEdit(name: "ADMIN_PASS", value: "new-admin-password-97", editedAt: at(-1)),
        ]
        change.removeLocalEdits = ["TIME_ZONE"]
        let (a, b) = try pair(change)
        let d = diff(a, b)
        #expect(d.localEdits.map(\.name) == ["ADMIN_PASS", "DISPLAY_NAME_1", "TIME_ZONE"])
        #expect(d.localEdits.map(\.change) == [.changed, .changed, .removed])
        #expect(d.text.contains("~ local edit ADMIN_PASS: \"********\""))
        #expect(d.text.contains("(secret value changed)"))
        #expect(!d.text.contains("new-admin-password-97"))
        #expect(d.text.contains("~ local edit DISPLAY_NAME_1: \"Desk\" (edited 1970-01-01T00:00:03.000Z) -> \"Hall\""))
    }

    @Test func savedFilesByKind() throws {
        var change = FlashChanges()
        let files = richChanges().savedFiles
        change.savedFiles = [
            // standard: same bytes, another URL and time
            SavedFile(kind: .standard, url: "http://elsewhere/std.xml", body: secretXML, savedAt: at(50)),
            // product: same size, other bytes
            SavedFile(
                kind: .product,
                url: files[1].url,
                body: secretText.map { $0 == 0x31 ? 0x32 : $0 },
                savedAt: files[1].savedAt
            ),
            // master: another size
            SavedFile(kind: .master, url: files[2].url, body: body(301), savedAt: files[2].savedAt),
        ]
        let (a, b) = try pair(change)
        let d = diff(a, b)
        #expect(d.savedFiles.map(\.name) == ["standard", "product", "master"])
        #expect(d.savedFiles.map(\.sameBytes) == [true, false, false])
        let lines = d.text.split(separator: "\n").map(String.init)
        #expect(
            lines.contains(
                "~ saved file standard: url http://***@prov.example/std.xml -> http://elsewhere/std.xml; same "
                    + "\(secretXML.count) bytes; saved 1970-01-01T00:00:00.001Z -> 1970-01-01T00:00:00.050Z"
            ),
            "\(d.text)"
        )
        #expect(lines.contains("~ saved file product: content differs (\(secretText.count) bytes each)"))
        #expect(lines.contains("~ saved file master: 300 -> 301 bytes"))
        #expect(!d.text.contains("url-password-44"))
    }

    @Test func theKeyChangedOrNotButNeverItsValue() throws {
        let key = "key-secret-0123456789abcdef"
        var rotate = FlashChanges()
        rotate.fileKey = .install(FileKey(key: "rotated-key-5555", installedAt: at(9), sourceURL: "u"))
        var (a, b) = try pair(rotate)
        var d = diff(a, b)
        #expect(d.fileKey?.keyChanged == true)
        #expect(d.text == "~ file key: changed (the key differs)\n")
        #expect(!d.text.contains(key) && !text(d.json).contains(key) && !text(d.json).contains("rotated-key-5555"))

        var clear = FlashChanges()
        clear.fileKey = .clear
        (a, b) = try pair(clear)
        d = diff(a, b)
        #expect(
            d.fileKey
                == FlashDiff.KeyDifference(
                    aPresent: true,
                    bPresent: false,
                    keyChanged: true,
                    aInstalledAt: a.fileKey?.installedAt,
                    bInstalledAt: nil
                )
        )
        #expect(d.text == "- file key: removed in B\n")
        d = diff(b, a)
        #expect(d.text.hasPrefix("+ file key: added in B"))

        var reinstall = FlashChanges()
        reinstall.fileKey = .install(FileKey(key: key, installedAt: at(9), sourceURL: "u"))
        (a, b) = try pair(reinstall)
        d = diff(a, b)
        #expect(d.fileKey?.keyChanged == false)
        #expect(d.text.hasPrefix("~ file key: same key, installed"))
    }

    @Test func fileOutcomesCertificatesAndTimers() throws {
        var change = FlashChanges()
        change.fileStatus = [
            FileStatus(kind: .product, url: "https://x/p", outcome: .downloaded, reason: "", at: at(4_100))
        ]
        change.rootCertificates = [RootCertificate(slot: 2, url: "https://p/ca2.pem", pem: testPEM, savedAt: at(1))]
        change.removeRootCertificates = [3]
        change.cancelTimers = [.resync]
        change.armTimers = [.retry: at(1_800_000), .cyclic: at(604_800_001)]
        let (a, b) = try pair(change)
        let d = diff(a, b)
        #expect(d.fileStatus.map(\.kind) == [.product])
        #expect(d.rootCertificates.map(\.name) == ["2", "3"])
        #expect(d.rootCertificates.map(\.change) == [.added, .removed])
        #expect(d.timers.map(\.kind) == [.cyclic, .retry, .resync])
        #expect(d.timers.map(\.change) == [.changed, .added, .removed])
        #expect(d.count == 6)
        let lines = d.text.split(separator: "\n").map(String.init)
        #expect(
            lines.contains(
                "~ file outcome product: fell_back at 1970-01-01T00:00:04.002Z from https://x/p (HTTP 404) -> "
                    + "downloaded at 1970-01-01T00:00:04.100Z from https://x/p"
            )
        )
        #expect(
            lines.contains(
                "+ root certificate 2: https://p/ca2.pem (\(testPEM.count) bytes, saved 1970-01-01T00:00:00.001Z) (only in B)"
            )
        )
        #expect(lines.contains("- timer resync: 1969-12-31T23:59:59.995Z (only in A)"))
        #expect(lines.contains("~ timer cyclic: 1970-01-08T00:00:00.000Z -> 1970-01-08T00:00:00.001Z"))

        let object = try #require(try JSONSerialization.jsonObject(with: Data(d.json)) as? [String: Any])
        #expect(object["identical"] as? Bool == false)
        let timers = try #require(object["timers"] as? [[String: Any]])
        #expect(timers.map { $0["change"] as? String } == ["changed", "added", "removed"])
        #expect(timers[1]["a"] is NSNull)
        #expect(timers[1]["b"] as? String == "1970-01-01T00:30:00.000Z")
    }
}
