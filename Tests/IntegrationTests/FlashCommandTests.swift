import Foundation
import PhoneCore
import Testing
import VPhoneTesting

/// `vphone flash info|export|import|diff|from-config` run as the binary, on real files.
@Suite("vphone flash", .serialized)
struct FlashCommandTests {
    static let examples = TestProfiles.repositoryRoot + "/examples/prov"

    /// A Standard Format file, as a sibling model's customer or an "export operational values" dump has it.
    static let textDump =
        "# Panasonic SIP Phone Standard Format File #\r\n"
        + "NTP_ADDR=\"ntp.customer.example\"\r\n"
        + "SIP_PASS_3=\"text-password-303\"\r\n"
        + "DISPLAY_NAME_3=\"Lobby\"\r\n"

    let dir: String

    init() throws { dir = try makeTemporaryDirectory(prefix: "vphone-flash") }

    func path(_ name: String) -> String { dir + "/" + name }

    func bytes(_ name: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path(name))) }

    func mode(_ name: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path(name))[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    /// An image built from the three example device files, the initial file and a text dump as the master file.
    @discardableResult
    func build(_ name: String = "built.flash", time: String = "2026-11-27T08:00:00.000Z") throws -> Run {
        try Self.textDump.write(toFile: path("dump.txt"), atomically: true, encoding: .utf8)
        let r = try vphone(
            [
                "flash", "from-config", Self.examples + "/Config0080F0C571EB.cfg",
                Self.examples + "/ConfigKX-UTG300.cfg",
                "--master", "dump.txt", "--initial", Self.examples + "/KX-UTG300.cfg", "--mac", mac, "--to", name,
                "--time", time,
            ],
            cwd: dir
        )
        #expect(r.code == 0, "\(r.stderr)")
        return r
    }

    // MARK: - from-config

    @Test func fromConfigBuildsAnImageFromXMLAndTextAsIfProvisioned() throws {
        let r = try build()
        #expect(r.stdout.contains("built built.flash for \(mac) (KX-UTG300)"))
        let shown = try configShow(flash: path("built.flash"), cwd: dir)
        #expect(shown["SIP_AUTHID_1"]?.value == "201" && shown["SIP_AUTHID_1"]?.source == "standard")
        #expect(shown["SIP_PASS_1"]?.value == "********")
        #expect(shown["SIP_RGSTR_ADDR_1"]?.source == "product")
        #expect(shown["REG_EXPIRE_TIME_1"]?.value == "600")
        #expect(shown["NTP_ADDR"]?.value == "ntp.customer.example" && shown["NTP_ADDR"]?.source == "master")
        #expect(shown["DISPLAY_NAME_3"]?.source == "master")
        #expect(shown["CFG_STANDARD_FILE_PATH"]?.source == "initial")

        let info = try vphone(["flash", "info", "built.flash"], cwd: dir)
        #expect(info.code == 0, "\(info.stderr)")
        for line in [
            "file standard  downloaded at 2026-11-27T08:00:00.000Z from file://Config0080F0C571EB.cfg",
            "file master    downloaded at 2026-11-27T08:00:00.000Z from file://dump.txt", "boots          1",
            "file key       none", "integrity ok",
        ] {
            #expect(info.stdout.contains(line), "\(line) missing from\n\(info.stdout)")
        }
        let events = try vphone(["events", "--flash", "built.flash"], cwd: dir)
        #expect(events.stdout.contains("from-config"))
        #expect(events.stdout.contains("master file loaded from file://dump.txt"))
        #expect(try mode("built.flash") == 0o600)
    }

    /// A line the KX-UTG300 (6 lines) does not have is left out with a warning, as the phone leaves it out.
    @Test func fromConfigIgnoresLinesTheModelLacks() throws {
        try "<PANASIPPhoneConfig><Device><Lines>\n<Line idx=\"2\"><PHONE_NUMBER>202</PHONE_NUMBER></Line>\n"
            .appending(
                "<Line idx=\"7\"><PHONE_NUMBER>707</PHONE_NUMBER></Line>\n</Lines></Device></PANASIPPhoneConfig>\n"
            )
            .write(toFile: path("lines.xml"), atomically: true, encoding: .utf8)
        let r = try vphone(["flash", "from-config", "lines.xml", "--mac", mac, "--to", "lines.flash"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(
            r.stderr.contains("lines.xml: line 3: PHONE_NUMBER_7: the KX-UTG300 has lines 1 to 6, not line 7; ignored"),
            "\(r.stderr)"
        )
        let shown = try configShow(flash: path("lines.flash"), cwd: dir)
        #expect(shown["PHONE_NUMBER_2"]?.value == "202")
        #expect(shown["PHONE_NUMBER_7"] == nil)
    }

    @Test func fromConfigIsDeterministicGivenATime() throws {
        try build("one.flash")
        try build("two.flash")
        let a = try vphone(["flash", "export", "one.flash", "--to", "-", "--include-secrets"], cwd: dir)
        let b = try vphone(["flash", "export", "two.flash", "--to", "-", "--include-secrets"], cwd: dir)
        #expect(a.code == 0 && !a.stdout.isEmpty)
        #expect(a.stdout == b.stdout)
        #expect(try vphone(["flash", "diff", "one.flash", "two.flash"], cwd: dir).code == 0)
    }

    @Test func fromConfigRefusesBadInputAndWritesNothing() throws {
        try "<PANASIPPhoneConfig><Device>\n<X>1</Y></Device></PANASIPPhoneConfig>".write(
            toFile: path("bad.xml"),
            atomically: true,
            encoding: .utf8
        )
        try "U2FsdGVkX18BAgMEBQYHCBsc0vVMoxi4ozQdEbcKwwvQ/oGyYT6aoXKSWalVVjY3\n".write(
            toFile: path("secret.enc"),
            atomically: true,
            encoding: .utf8
        )
        let cases: [([String], Int32, String)] = [
            (["bad.xml"], 65, "bad.xml:2"),
            (["secret.enc"], 65, "encrypted"),
            (["missing.cfg"], 65, "missing.cfg"),
            (["a", "b", "c", "d"], 64, "at most one file per kind"),
            ([], 64, "at least one configuration file"),
            (["--standard", "bad.xml", "bad.xml", "bad.xml", "bad.xml"], 64, "2 device file(s) left"),
        ]
        for (files, code, words) in cases {
            let r = try vphone(["flash", "from-config"] + files + ["--mac", mac, "--to", "new.flash"], cwd: dir)
            #expect(r.code == code, "\(files): \(r.stderr)")
            #expect(r.stderr.contains(words), "\(files): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: path("new.flash")))
        }
        // A phone's MAC is unicast (and not all zeros).
        for (bad, says) in [
            ("FFFFFFFFFFFF", "is the broadcast address"), ("0100005E0001", "is a multicast address"),
            ("000000000000", "is all zeros"),
        ] {
            let r = try vphone(["flash", "from-config", "bad.xml", "--mac", bad, "--to", "new.flash"], cwd: dir)
            #expect(r.code == 64, "\(bad): \(r.stderr)")
            #expect(r.stderr.contains("--mac \(bad) \(says)"), "\(bad): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: path("new.flash")))
        }
        try build("taken.flash")
        let before = try bytes("taken.flash")
        let r = try vphone(["flash", "from-config", "dump.txt", "--mac", mac, "--to", "taken.flash"], cwd: dir)
        #expect(r.code == 65)
        #expect(r.stderr.contains("taken.flash already exists"))
        #expect(try bytes("taken.flash") == before)
    }

    // MARK: - export and import

    @Test func exportImportExportIsByteIdenticalAndSecretsNeedAFlag() throws {
        try build()
        var r = try vphone(["flash", "export", "built.flash", "--to", "full.json", "--include-secrets"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(try mode("full.json") == 0o600)
        r = try vphone(["flash", "import", "full.json", "--to", "copy.flash"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        r = try vphone(["flash", "export", "copy.flash", "--to", "again.json", "--include-secrets"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(try bytes("again.json") == bytes("full.json"))
        #expect(try vphone(["flash", "diff", "built.flash", "copy.flash"], cwd: dir).code == 0)

        // Standard input and output work too.
        r = try vphone(["flash", "export", "copy.flash", "--to", "-", "--include-secrets"], cwd: dir)
        #expect(Data(r.stdout.utf8) == (try bytes("full.json")))
    }

    @Test func aDefaultExportMasksTheKeyAndPasswordsAndIsRefusedOnImport() throws {
        // A plain standard file carrying the key (spec §5).
        let standard = try String(contentsOfFile: Self.examples + "/Config0080F0C571EB.cfg", encoding: .utf8)
            .replacingOccurrences(
                of: "<Device>",
                with:
                    "<Device><System><Prov><CFG_FILE_KEY>0123456789abcdef0123456789abcdef</CFG_FILE_KEY></Prov></System>"
            )
        try standard.write(toFile: path("std.cfg"), atomically: true, encoding: .utf8)
        var r = try vphone(["flash", "from-config", "std.cfg", "--mac", mac, "--to", "keyed.flash"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        r = try vphone(["flash", "info", "keyed.flash"], cwd: dir)
        #expect(r.stdout.contains("present (not shown)"))
        #expect(!r.stdout.contains("0123456789abcdef"))

        r = try vphone(["flash", "export", "keyed.flash", "--to", "masked.json"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        let masked = String(decoding: try bytes("masked.json"), as: UTF8.self)
        for secret in ["0123456789abcdef0123456789abcdef", "s3cret-201", "s3cret-299"] {
            #expect(!masked.contains(secret), "\(secret) leaked")
        }
        #expect(masked.contains("\"masked\" : true"))

        r = try vphone(["flash", "import", "masked.json", "--to", "copy.flash"], cwd: dir)
        #expect(r.code == 65)
        #expect(r.stderr.contains("--allow-masked") && r.stderr.contains("fileKey"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path("copy.flash")))

        r = try vphone(["flash", "import", "masked.json", "--to", "copy.flash", "--allow-masked"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stderr.contains("left out"))
        let info = try vphone(["flash", "info", "copy.flash"], cwd: dir)
        #expect(info.stdout.contains("file key       none"), "\(info.stdout)")
        #expect(try configShow(flash: path("copy.flash"), cwd: dir)["SIP_PASS_1"]?.source == "factory")
    }

    @Test func exportRefusesToOverwriteUnlessForcedAndNeverTheImageItself() throws {
        try build()
        try "keep".write(toFile: path("taken.json"), atomically: true, encoding: .utf8)
        var r = try vphone(["flash", "export", "built.flash", "--to", "taken.json"], cwd: dir)
        #expect(r.code == 65)
        #expect(try bytes("taken.json") == Data("keep".utf8))
        r = try vphone(["flash", "export", "built.flash", "--to", "taken.json", "--force"], cwd: dir)
        #expect(r.code == 0)
        let before = try bytes("built.flash")
        r = try vphone(["flash", "export", "built.flash", "--to", "built.flash", "--force"], cwd: dir)
        #expect(r.code == 64)
        #expect(try bytes("built.flash") == before)
        // A directory that is not there is named as such, not as the temporary file that could not be made.
        r = try vphone(["flash", "export", "built.flash", "--to", "nodir/x.json"], cwd: dir)
        #expect(r.code == 64)
        #expect(r.stderr.contains("--to nodir/x.json: the directory nodir does not exist"), "\(r.stderr)")
    }

    /// An image is often a phone's state from the field: its local edits are imported as they are, even those
    /// `config set` refuses, with one warning each on standard error (secrets masked), and exit 0.
    @Test func importKeepsLocalEditsConfigSetRefusesAndWarnsOfEach() throws {
        try build()
        var r = try vphone(["config", "set", "NTP_ADDR", "ntp.local", "--flash", "built.flash"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        r = try vphone(["flash", "export", "built.flash", "--to", "full.json", "--include-secrets"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        var export = try #require(try JSONSerialization.jsonObject(with: bytes("full.json")) as? [String: Any])
        var edits = try #require(export["localEdits"] as? [String: [String: Any]])
        let editedAt = try #require(edits["NTP_ADDR"]?["editedAt"])
        // SIP_AUTHID_1 stays provisioned with perm="R" in the export's table: a hand edit, as from another tool.
        for (name, value) in [
            ("CFG_CYCLIC_INTVL", "abc"), ("NO_SUCH_PARAM", "1"), ("SIP_AUTHID_1", "mine"),
            ("SIP_PASS_7", "hunter2"), ("CFG_STANDARD_FILE_PATH", "gopher://carol:CarolPw9@prov.test/std.cfg"),
        ] {
            edits[name] = ["value": value, "editedAt": editedAt]
        }
        export["localEdits"] = edits
        try JSONSerialization.data(withJSONObject: export).write(to: URL(fileURLWithPath: path("edited.json")))

        r = try vphone(["flash", "import", "edited.json", "--to", "copy.flash"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout == "imported edited.json into copy.flash\n")
        let warnings = r.stderr.split(separator: "\n").map(String.init)
        let suffix = "; imported as it is (`vphone config set` refuses such an edit on the image as provisioned)"
        #expect(
            warnings == [
                "vphone: warning: local edit CFG_CYCLIC_INTVL = \"abc\" in copy.flash: CFG_CYCLIC_INTVL=\"abc\" is "
                    + "not a whole number of minutes in 1...40320" + suffix,
                "vphone: warning: local edit CFG_STANDARD_FILE_PATH = \"gopher://***@prov.test/std.cfg\" in "
                    + "copy.flash: CFG_STANDARD_FILE_PATH=\"gopher://***@prov.test/std.cfg\" is not a URL the phone "
                    + "downloads from: the scheme \"gopher\" is refused: the phone speaks only http, https, tftp "
                    + "and ftp" + suffix,
                "vphone: warning: local edit NO_SUCH_PARAM = \"1\" in copy.flash: NO_SUCH_PARAM is not a parameter "
                    + "of KX-UTG300; `vphone config show` lists them all" + suffix,
                "vphone: warning: local edit SIP_AUTHID_1 = \"mine\" in copy.flash: SIP_AUTHID_1 is read-only: the "
                    + "standard file provisions it with perm=\"R\"; change it on the provisioning server instead"
                    + suffix,
                "vphone: warning: local edit SIP_PASS_7 = \"********\" in copy.flash: SIP_PASS_7 is not a "
                    + "parameter of KX-UTG300 (did you mean SIP_PASS_1, SIP_PASS_2, SIP_PASS_3?); `vphone config "
                    + "show` lists them all" + suffix,
            ],
            "\(r.stderr)"
        )
        #expect(!r.stderr.contains("hunter2") && !r.stderr.contains("CarolPw9"), "\(r.stderr)")

        // Imported as they were: every edit, value for value.
        r = try vphone(["flash", "export", "copy.flash", "--to", "-", "--include-secrets"], cwd: dir)
        let again = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let imported = try #require(again["localEdits"] as? [String: [String: Any]])
        #expect(imported.mapValues { $0["value"] as? String } == edits.mapValues { $0["value"] as? String })

        // Another model's export: its edits are not judged by this model's profile, and one line says so.
        var identity = try #require(export["identity"] as? [String: Any])
        identity["model"] = "KX-HDV130"
        export["identity"] = identity
        try JSONSerialization.data(withJSONObject: export).write(to: URL(fileURLWithPath: path("other.json")))
        r = try vphone(["flash", "import", "other.json", "--to", "other.flash"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(
            r.stderr == "vphone: warning: other.flash is a KX-HDV130 and the profile a KX-UTG300: its local edits "
                + "were not checked; give --profile with the KX-HDV130's profile to check them\n"
        )
    }

    @Test func importRefusesMalformedJSONSayingWhere() throws {
        try "{\n  \"format\" : \"vphone-flash-export\",\n  \"formatVersion\" : 1\n  \"x\" : 2\n}\n".write(
            toFile: path("broken.json"),
            atomically: true,
            encoding: .utf8
        )
        let r = try vphone(["flash", "import", "broken.json", "--to", "copy.flash"], cwd: dir)
        #expect(r.code == 65)
        #expect(r.stderr.contains("broken.json is not a usable vphone flash export: not valid JSON: line 4, column 3"))
        #expect(!FileManager.default.fileExists(atPath: path("copy.flash")))
    }

    // MARK: - diff

    @Test func diffExitsZeroOneOrSixtyFive() throws {
        try build("a.flash")
        try build("b.flash", time: "2026-11-28T08:00:00.000Z")
        var r = try vphone(["flash", "diff", "a.flash", "a.flash"], cwd: dir)
        #expect(r.code == 0 && r.stdout.isEmpty)
        try vphone(["config", "set", "SIP_PASS_1", "changed-password-1", "--flash", "b.flash"], cwd: dir)
        r = try vphone(["flash", "diff", "a.flash", "b.flash"], cwd: dir)
        #expect(r.code == 1, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("--- a.flash\n+++ b.flash\n"))
        #expect(r.stdout.contains("~ identity createdAt: 2026-11-27T08:00:00.000Z -> 2026-11-28T08:00:00.000Z"))
        #expect(r.stdout.contains("~ parameter SIP_PASS_1: \"********\" (standard, access=A) -> \"********\" (local)"))
        #expect(r.stdout.contains("+ local edit SIP_PASS_1"))
        #expect(!r.stdout.contains("changed-password-1") && !r.stdout.contains("s3cret"))
        r = try vphone(["flash", "diff", "a.flash", "b.flash", "--json"], cwd: dir)
        #expect(r.code == 1)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect(object?["identical"] as? Bool == false)
    }

    // MARK: - Refusals

    /// Makes a good image and every kind of unusable one beside it; returns each unusable name (one missing) with
    /// the words of the store's refusal.
    func makeUnusableImages() throws -> [(String, String)] {
        try build("good.flash")
        let good = try bytes("good.flash")
        try Data().write(to: URL(fileURLWithPath: path("empty.flash")))
        try Data((0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }).write(
            to: URL(fileURLWithPath: path("random.flash"))
        )
        try good.prefix(good.count / 2).write(to: URL(fileURLWithPath: path("truncated.flash")))
        try good.write(to: URL(fileURLWithPath: path("newer.flash")))
        try good.write(to: URL(fileURLWithPath: path("older.flash")))
        // user_version is the big-endian integer at offset 60 of the SQLite header; application_id at 68.
        for (name, offset, value) in [("newer.flash", 60, UInt8(3)), ("older.flash", 60, UInt8(0))] {
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path(name)))
            try handle.seek(toOffset: UInt64(offset + 3))
            try handle.write(contentsOf: Data([value]))
            try handle.close()
        }
        var plain = good
        plain.replaceSubrange(68..<72, with: [0, 0, 0, 0])
        try plain.write(to: URL(fileURLWithPath: path("plain.flash")))
        return [
            ("missing.flash", "no flash image at"), ("empty.flash", "is empty"),
            ("random.flash", "is not an SQLite database"), ("truncated.flash", "is damaged"),
            ("newer.flash", "newer vphone (schema 3)"), ("older.flash", "older vphone (schema 0)"),
            ("plain.flash", "not a vphone flash image"),
        ]
    }

    /// Every unusable image, for every command that reads one: the store's message, exit 65, nothing touched.
    @Test func everyUnusableImageIsRefusedWith65AndLeftAlone() throws {
        for (name, words) in try makeUnusableImages() {
            let before = try? bytes(name)
            for args in [
                ["flash", "info", name], ["flash", "export", name, "--to", "out.json"],
                ["flash", "diff", "good.flash", name], ["flash", "diff", name, "good.flash", "--json"],
            ] {
                let r = try vphone(args, cwd: dir)
                #expect(r.code == 65, "\(args): \(r.stderr)")
                #expect(r.stderr.contains(name) && r.stderr.contains(words), "\(args): \(r.stderr)")
                #expect(r.stdout.isEmpty, "\(args): \(r.stdout)")
            }
            #expect((try? bytes(name)) == before, "\(name) was changed")
            #expect(!FileManager.default.fileExists(atPath: path("out.json")))
        }
        #expect(!FileManager.default.fileExists(atPath: path("missing.flash")))
    }

    /// `boot --snapshot` boots a temporary copy of the image: on an unusable image its error named the copy
    /// (/tmp/vphone-snapshot-…/x.flash), a file the user never gave, and left the copy behind. So did a replay of
    /// a recording whose flash is damaged.
    @Test func bootingACopyOfAnUnusableImageNamesTheImageAndLeavesNoCopy() throws {
        let scratch = path("tmp")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        func boot(_ args: [String]) throws -> Run {
            try vphone(
                ["boot"] + args + ["--once", "--prov-url", "http://127.0.0.1:9/"],
                cwd: dir,
                environment: ["TMPDIR": scratch + "/"]
            )
        }
        for (name, words) in try makeUnusableImages() {
            let before = try? bytes(name)
            let r = try boot(["--snapshot", "--flash", name])
            #expect(r.code == 65, "\(name): \(r.stderr)")
            #expect(r.stderr.contains(name) && r.stderr.contains(words), "\(name): \(r.stderr)")
            #expect(!r.stderr.contains("vphone-snapshot"), "\(name): \(r.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty, "\(name)")
            #expect((try? bytes(name)) == before, "\(name) was changed")
        }
        // Another phone's image: a bad command line, named as given, no copy left.
        let other = try boot(["--snapshot", "--flash", "good.flash", "--mac", "0080F0C571EC"])
        #expect(other.code == 64, "\(other.stderr)")
        #expect(
            other.stderr.contains("flash good.flash belongs to \(mac), not 0080F0C571EC: drop --mac"),
            "\(other.stderr)"
        )
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty)
        // A recording whose flash is damaged: its flash.flash is named.
        let recording = path("rec")
        try FileManager.default.copyItem(
            atPath: TestProfiles.repositoryRoot + "/Storage/examples/master-404/incident",
            toPath: recording
        )
        try bytes("truncated.flash").write(to: URL(fileURLWithPath: recording + "/flash.flash"))
        let replay = try vphone(["boot", "--replay", "rec"], cwd: dir, environment: ["TMPDIR": scratch + "/"])
        #expect(replay.code == 65, "\(replay.stderr)")
        #expect(replay.stderr.contains("/rec/flash.flash is damaged"), "\(replay.stderr)")
        #expect(!replay.stderr.contains("vphone-replay"), "\(replay.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty)
    }
}
