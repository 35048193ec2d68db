import Foundation
import PhoneCore
import Testing

@testable import Flash

/// A standard file as the phone keeps it (decrypted), with secrets in it.
let secretXML = Array(
    """
    <?xml version="1.0" encoding="UTF-8"?>
    <PANASIPPhoneConfig>
    <!-- old: <SIP_PASS>retired-password-77</SIP_PASS> -->
    <Initial><CfgFiles>
    <CFG_PRODUCT_FILE_PATH>http://prov:url-password-55@prov.example/p.cfg</CFG_PRODUCT_FILE_PATH>
    </CfgFiles></Initial>
    <Device><System><Prov><CFG_FILE_KEY>12341234abcdabcd12341234abcdabcd</CFG_FILE_KEY></Prov></System>
    <Lines><Line idx="1"><Sip>
    <SIP_AUTHID perm="R">201</SIP_AUTHID>
    <SIP_PASS access="A">s3cret-201</SIP_PASS>
    <SIP_PASS/>
    </Sip></Line></Lines></Device>
    </PANASIPPhoneConfig>

    """.utf8
)

/// The same in Standard Format text, CRLF line ends.
let secretText = Array(
    ("# Panasonic SIP Phone Standard Format File #\r\n"
        + "SIP_AUTHID_1=\"201\"\r\n"
        + "SIP_PASS_1=\"s3cret-text-201\"\r\n"
        + "  # SIP_PASS_2=\"commented-password-88\"\r\n"
        + "HTTP_AUTH_PASSWORD=bare-password-66\r\n"
        + "DISPLAY_NAME_1=\"Desk = 1\"\r\n").utf8
)

/// Every part of flash set, with each kind of body: XML and text holding secrets, binary, empty; a key, two
/// certificates, times outside the ISO 8601 years.
func richChanges() -> FlashChanges {
    var changes = everyPartChanges(boot: 7)
    changes.savedFiles = [
        SavedFile(
            kind: .standard,
            url: "http://id:url-password-44@prov.example/std.xml",
            body: secretXML,
            savedAt: at(1)
        ),
        SavedFile(kind: .product, url: "http://prov.example/p.cfg", body: secretText, savedAt: at(2)),
        SavedFile(kind: .master, url: "tftp://10.0.0.1/m.bin", body: body(300, seed: 200), savedAt: at(Int64.max)),
        SavedFile(kind: .initial, url: "", body: [], savedAt: at(Int64.min)),
    ]
    changes.parameters?["SIP_PASS_1"] = Parameter(name: "SIP_PASS_1", value: "param-password-33", source: .standard)
    changes.parameters?["USR_PROV_SVR_URL"] = Parameter(
        name: "USR_PROV_SVR_URL",
        value: "https://admin:url-password-22@prov.example/",
        source: .local
    )
    changes.setLocalEdits.append(LocalEdit(name: "ADMIN_PASS", value: "edit-password-11", editedAt: at(-1)))
    changes.fileKey = .install(
        FileKey(key: "key-secret-0123456789abcdef", installedAt: at(253_402_300_800_000), sourceURL: "http://p/s.xml")
    )
    return changes
}

@Suite("Flash export and import")
struct FlashExportTests {
    let directory: TemporaryDirectory

    init() throws { directory = try TemporaryDirectory() }

    func image(_ name: String = "phone.flash", _ changes: FlashChanges = richChanges()) throws -> FlashStore {
        let store = try FlashStore.create(at: directory.file(name), identity: testIdentity)
        try store.apply(changes)
        return store
    }

    // MARK: - Round trip

    @Test func exportImportExportIsByteIdenticalWithEveryFieldSet() throws {
        let store = try image()
        let first = try store.exportJSON(includeSecrets: true, isSecret: utg300.isSecret)
        let copy = try FlashStore.importJSON(first, from: "first.json", to: directory.file("copy.flash"))
        #expect(try copy.load() == store.load())
        #expect(try copy.events() == store.events())
        let second = try copy.exportJSON(includeSecrets: true, isSecret: utg300.isSecret)
        #expect(second == first, "\(text(first))\n---\n\(text(second))")

        // And once more through a file closed and reopened.
        copy.close()
        let third = try FlashStore.open(at: directory.file("copy.flash"), readOnly: true)
            .exportJSON(includeSecrets: true, isSecret: utg300.isSecret)
        #expect(third == first)
    }

    /// An event quoting a URL with its credentials (written before the phone masked them) is masked in a default
    /// export, as the image's other URLs are, and kept with --include-secrets.
    @Test func eventsQuotingURLCredentialsAreMaskedUnlessSecretsAreIncluded() throws {
        let event = LogEntry(
            at: PhoneTime(millisecondsSinceEpoch: 1_000),
            boot: 1,
            level: .info,
            kind: "local-edit",
            message: "local edit: USR_PROV_SVR_URL = \"http://carol:CarolPw9@prov.test/\"",
            fields: ["url": "ftp://dave:DavePw8@prov.test/x.cfg"]
        )
        let snapshot = FlashSnapshot(identity: testIdentity, bootCount: 1)
        let masked = text(FlashExport(snapshot: snapshot, events: [event], includeSecrets: false) { _ in false }.json)
        #expect(!masked.contains("CarolPw9") && !masked.contains("DavePw8"))
        #expect(masked.contains("http://***@prov.test/") && masked.contains("ftp://***@prov.test/x.cfg"))
        let full = text(FlashExport(snapshot: snapshot, events: [event], includeSecrets: true) { _ in false }.json)
        #expect(full.contains("CarolPw9") && full.contains("DavePw8"))
        #expect(event.withURLCredentialsMasked.message == "local edit: USR_PROV_SVR_URL = \"http://***@prov.test/\"")
    }

    @Test func aFreshImageRoundTripsToo() throws {
        let store = try FlashStore.create(at: directory.file("fresh.flash"), identity: testIdentity)
        let first = try store.exportJSON(includeSecrets: false, isSecret: utg300.isSecret)
        let copy = try FlashStore.importJSON(first, to: directory.file("copy.flash"))
        #expect(try copy.exportJSON(includeSecrets: false, isSecret: utg300.isSecret) == first)
        #expect(text(first).contains("\"fileKey\" : null"))
    }

    @Test func theExportIsSortedPrettyJSONWithTextAndBase64Bodies() throws {
        let bytes = try image().exportJSON(includeSecrets: true, isSecret: utg300.isSecret)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(object["format"] as? String == "vphone-flash-export")
        #expect(object["formatVersion"] as? Int == 1)
        #expect(object["schemaVersion"] as? Int == FlashStore.schemaVersion)
        #expect(object["secrets"] as? String == "included")
        #expect(object["bootCount"] as? Int == 7)
        let files = try #require(object["savedFiles"] as? [String: [String: Any]])
        #expect(files["standard"]?["encoding"] as? String == "utf-8")
        #expect(files["standard"]?["body"] as? String == text(secretXML))
        #expect(files["master"]?["encoding"] as? String == "base64")
        #expect(files["master"]?["body"] as? String == Data(body(300, seed: 200)).base64EncodedString())
        #expect(files["master"]?["size"] as? Int == 300)
        #expect(files["master"]?["savedAt"] as? Int64 == Int64.max)  // outside 0000...9999: milliseconds
        #expect(files["product"]?["savedAt"] as? String == "1970-01-01T00:00:00.002Z")
        let identity = try #require(object["identity"] as? [String: String])
        #expect(
            identity == [
                "mac": "0080F0C571EB", "model": "KX-UTG300", "firmware": "03.210",
                "createdAt": "1970-01-01T00:00:01.000Z",
            ]
        )
        let certificates = try #require(object["rootCertificates"] as? [String: [String: Any]])
        #expect(certificates.keys.sorted() == ["1", "3"])
        #expect(certificates["1"]?["pem"] as? String == text(testPEM))

        // Keys sorted at every level, two-space indentation, a final newline, URLs with bare slashes.
        let lines = text(bytes).split(separator: "\n").map(String.init)
        let topKeys = lines.filter { $0.hasPrefix("  \"") }.map { $0.split(separator: "\"")[1] }
        #expect(topKeys == topKeys.sorted())
        #expect(bytes.last == UInt8(ascii: "\n"))
        #expect(text(bytes).contains("\"url\" : \"http://prov.example/p.cfg\""))
    }

    // MARK: - Masking

    static let secrets = [
        "key-secret-0123456789abcdef", "param-password-33", "edit-password-11", "s3cret-201", "s3cret-text-201",
        "retired-password-77", "commented-password-88", "bare-password-66", "url-password-55", "url-password-44",
        "url-password-22", "12341234abcdabcd12341234abcdabcd",
    ]

    @Test func aDefaultExportHoldsNoSecret() throws {
        let store = try image()
        let masked = text(try store.exportJSON(includeSecrets: false, isSecret: utg300.isSecret))
        for secret in Self.secrets { #expect(!masked.contains(secret), "\(secret) leaked:\n\(masked)") }
        #expect(masked.contains("\"secrets\" : \"masked\""))
        // What is not secret stays readable.
        #expect(masked.contains("<SIP_AUTHID perm=\\\"R\\\">201</SIP_AUTHID>"))
        #expect(masked.contains("<SIP_PASS access=\\\"A\\\">********</SIP_PASS>"))
        #expect(masked.contains("SIP_PASS_1=\\\"********\\\"\\r\\n"))
        #expect(masked.contains("HTTP_AUTH_PASSWORD=********\\r\\n"))
        #expect(masked.contains("DISPLAY_NAME_1=\\\"Desk = 1\\\""))
        #expect(masked.contains("http://***@prov.example/p.cfg"))

        let withSecrets = text(try store.exportJSON(includeSecrets: true, isSecret: utg300.isSecret))
        for secret in Self.secrets { #expect(withSecrets.contains(secret), "\(secret) missing") }
        #expect(!withSecrets.contains("\"masked\""))
    }

    @Test func maskedEntriesAreListedAndAMaskedExportIsRefused() throws {
        let bytes = try image().exportJSON(includeSecrets: false, isSecret: utg300.isSecret)
        let export = try FlashExport.parse(bytes, source: "masked.json")
        #expect(
            export.maskedEntries == [
                "fileKey", "localEdits.ADMIN_PASS", "parameters.SIP_PASS_1", "parameters.USR_PROV_SVR_URL",
                "savedFiles.master", "savedFiles.product", "savedFiles.standard",
            ]
        )
        let target = directory.file("copy.flash")
        expectFlashError(.maskedExport, mentioning: ["masked.json", "fileKey", "--include-secrets", "--allow-masked"]) {
            _ = try FlashStore.importJSON(bytes, from: "masked.json", to: target)
        }
        #expect(!FileManager.default.fileExists(atPath: target))
    }

    @Test func allowMaskedImportsWithoutTheMaskedEntries() throws {
        let store = try image()
        let original = try store.load()
        let bytes = try store.exportJSON(includeSecrets: false, isSecret: utg300.isSecret)
        let copy = try FlashStore.importJSON(bytes, to: directory.file("copy.flash"), allowMasked: true)
        let snapshot = try copy.load()
        #expect(snapshot.fileKey == nil)
        #expect(snapshot.parameters["SIP_PASS_1"] == nil)
        #expect(snapshot.parameters["USR_PROV_SVR_URL"] == nil)
        #expect(snapshot.parameters["SIP_AUTHID_1"] == original.parameters["SIP_AUTHID_1"])
        #expect(snapshot.localEdits["ADMIN_PASS"] == nil)
        #expect(snapshot.localEdits["DISPLAY_NAME_1"] == original.localEdits["DISPLAY_NAME_1"])
        #expect(snapshot.savedFiles.keys.sorted { $0.rawValue < $1.rawValue } == [.initial])
        #expect(snapshot.rootCertificates == original.rootCertificates)
        #expect(snapshot.timers == original.timers)
        #expect(try copy.events() == store.events())
        copy.close()
        let bytesOnDisk = try Data(contentsOf: URL(fileURLWithPath: directory.file("copy.flash")))
        #expect(bytesOnDisk.range(of: Data("********".utf8)) == nil)
    }

    @Test func anEmptySecretIsNotMasked() throws {
        var changes = FlashChanges()
        changes.parameters = ["SIP_PASS_2": Parameter(name: "SIP_PASS_2", value: "", source: .master)]
        let bytes = try image("e.flash", changes).exportJSON(includeSecrets: false, isSecret: utg300.isSecret)
        #expect(try FlashExport.parse(bytes, source: "e.json").maskedEntries.isEmpty)
        #expect(try FlashStore.importJSON(bytes, to: directory.file("copy.flash")).load().parameters.count == 1)
    }

    // MARK: - Refusals

    func edited(_ replace: (String) -> String) throws -> [UInt8] {
        let bytes = try image("source.flash").exportJSON(includeSecrets: true, isSecret: utg300.isSecret)
        let changed = replace(text(bytes))
        #expect(changed != text(bytes), "the edit did not apply")
        return Array(changed.utf8)
    }

    static let brokenExports: [(name: String, edit: @Sendable (String) -> String, words: [String])] = [
        ("truncated", { String($0.prefix(200)) }, ["not valid JSON", "line ", "column "]),
        (
            "a missing comma", { $0.replacingOccurrences(of: "\"bootCount\" : 7,", with: "\"bootCount\" : 7") },
            ["not valid JSON", "line 3, column 3", "expected ',' or '}', found '\"'"]
        ),
        ("not JSON", { _ in "PRAGMA user_version" }, ["not valid JSON", "line 1, column 1"]),
        ("a list", { _ in "[1, 2]" }, ["at the top level: expected an object"]),
        ("empty", { _ in "  \n" }, ["empty"]),
        (
            "a newer format", { $0.replacingOccurrences(of: "\"formatVersion\" : 1", with: "\"formatVersion\" : 2") },
            ["format version 2", "reads version 1", "upgrade vphone"]
        ),
        (
            "another format", { $0.replacingOccurrences(of: "vphone-flash-export", with: "phone-backup") },
            ["\"phone-backup\"", "vphone-flash-export"]
        ),
        (
            "a newer schema",
            {
                $0.replacingOccurrences(
                    of: "\"schemaVersion\" : \(FlashStore.schemaVersion)",
                    with: "\"schemaVersion\" : 9"
                )
            },
            ["schema 9", "upgrade vphone"]
        ),
        (
            "an unknown field", { $0.replacingOccurrences(of: "\"parameters\" :", with: "\"paramters\" :") },
            ["unknown field \"paramters\""]
        ),
        (
            "an unknown source",
            { $0.replacingOccurrences(of: "\"source\" : \"product\"", with: "\"source\" : \"cloud\"") },
            ["at parameters.DISPLAY_NAME_1.source", "\"cloud\" is not one of factory"]
        ),
        (
            "an unknown file kind",
            {
                $0.replacingOccurrences(
                    of: "\"savedFiles\" : {\n    \"initial\"",
                    with: "\"savedFiles\" : {\n    \"firmware\""
                )
            },
            ["at savedFiles.firmware", "not a file kind"]
        ),
        (
            "a bad time", { $0.replacingOccurrences(of: "1970-01-01T00:00:01.000Z", with: "1970-02-30T00:00:01.000Z") },
            ["at identity.createdAt", "1970-02-30"]
        ),
        (
            "a bad MAC", { $0.replacingOccurrences(of: "0080F0C571EB", with: "0080F0C571") },
            ["at identity.mac", "not a MAC address"]
        ),
        (
            "a missing field", { $0.replacingOccurrences(of: "\"bootCount\" : 7,", with: "") },
            ["the field \"bootCount\" is missing"]
        ),
        (
            "a wrong type", { $0.replacingOccurrences(of: "\"bootCount\" : 7", with: "\"bootCount\" : \"7\"") },
            ["at bootCount: expected an integer"]
        ),
        (
            "a boot count no boot could add one to",
            { $0.replacingOccurrences(of: "\"bootCount\" : 7", with: "\"bootCount\" : 9223372036854775807") },
            ["at bootCount", "must be 0...2147483647"]
        ),
        (
            "a slot outside 1...3",
            {
                $0.replacingOccurrences(
                    of: "\"rootCertificates\" : {\n    \"1\"",
                    with: "\"rootCertificates\" : {\n    \"4\""
                )
            },
            ["at rootCertificates.4", "not a certificate slot"]
        ),
        (
            "an unknown field inside",
            { $0.replacingOccurrences(of: "\"encoding\" : \"base64\"", with: "\"encoding\" : \"base64\", \"x\" : 1") },
            ["at savedFiles.master.x", "unknown field \"x\""]
        ),
        (
            "bad base64",
            {
                $0.replacingOccurrences(
                    of: "\"encoding\" : \"utf-8\",\n      \"savedAt\" : \"1970-01-01T00:00:00.002Z\"",
                    with: "\"encoding\" : \"base64\",\n      \"savedAt\" : \"1970-01-01T00:00:00.002Z\""
                )
            },
            ["at savedFiles.product.body", "not valid base64"]
        ),
    ]

    @Test(arguments: 0..<Self.brokenExports.count)
    func importRefusesABrokenExportSayingWhereAndWritesNothing(index: Int) throws {
        let (_, edit, words) = Self.brokenExports[index]
        let bytes = try edited(edit)
        let target = directory.file("copy.flash")
        expectFlashError(.invalidExport, mentioning: ["broken.json"] + words) {
            _ = try FlashStore.importJSON(bytes, from: "broken.json", to: target)
        }
        #expect(!FileManager.default.fileExists(atPath: target))
    }

    @Test func importNeverOverwritesAnExistingFile() throws {
        let bytes = try image().exportJSON(includeSecrets: true, isSecret: utg300.isSecret)
        let target = directory.file("taken.flash")
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: target))
        expectFlashError(.alreadyExists, path: target) { _ = try FlashStore.importJSON(bytes, to: target) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == Data("keep me".utf8))
    }

    @Test func aFailedImportLeavesNoFile() throws {
        // The target's directory cannot be made (a plain file is in the way).
        let bytes = try image().exportJSON(includeSecrets: true, isSecret: utg300.isSecret)
        try Data().write(to: URL(fileURLWithPath: directory.file("plain")))
        expectFlashError(.io, path: directory.file("plain/copy.flash")) {
            _ = try FlashStore.importJSON(bytes, to: directory.file("plain/copy.flash"))
        }
    }

    // MARK: - Times

    @Test(arguments: [
        Int64(0), 1, -1, -5, 1_795_000_000_123, -62_167_219_200_000, 253_402_300_799_999, 951_782_400_000,
        -62_167_219_200_001, 253_402_300_800_000, .max, .min,
    ])
    func timesRoundTripExactly(milliseconds: Int64) throws {
        let time = ExportTime(PhoneTime(millisecondsSinceEpoch: milliseconds))
        let encoded = FlashJSON.encode([time])
        let decoded = try JSONDecoder().decode([ExportTime].self, from: Data(encoded))
        #expect(decoded == [time])
        if ExportTime.textRange.contains(milliseconds) {
            #expect(PhoneTime(iso8601: time.time.description) == time.time)
        }
    }

    @Test func isoTimesAreReadStrictly() {
        #expect(PhoneTime(iso8601: "2026-11-27T08:00:00.000Z")?.description == "2026-11-27T08:00:00.000Z")
        #expect(PhoneTime(iso8601: "2026-11-27T08:00:00Z")?.description == "2026-11-27T08:00:00.000Z")
        #expect(PhoneTime(iso8601: "2000-02-29T00:00:00.000Z") != nil)
        for bad in [
            "2026-02-29T00:00:00.000Z", "2026-13-01T00:00:00.000Z", "2026-11-27T24:00:00.000Z", "2026-11-27 08:00:00Z",
            "2026-11-27T08:00:00.000", "2026-11-27T08:00:00.000+01:00", "", "yesterday", "2026-11-27T08:00:60.000Z",
        ] {
            #expect(PhoneTime(iso8601: bad) == nil, "\(bad)")
        }
    }
}
