import Foundation
import PhoneCore
import Testing
import VPhoneTesting

/// Bad input on the command line and bad files: clear messages and the documented exit codes.
@Suite("vphone command line", .serialized)
struct CommandLineTests {
    static let badCommandLines: [([String], String)] = [
        (["boot", "--mac", "0080F0C571E", "--once"], "--mac"),
        (["boot", "--mac", "XYZ", "--once"], "--mac"),
        // A phone's MAC is unicast, and not all zeros.
        (
            ["boot", "--mac", "FFFFFFFFFFFF", "--once"],
            "--mac FFFFFFFFFFFF is the broadcast address: a phone's MAC is unicast"
        ),
        (
            ["boot", "--mac", "010000000000", "--once"],
            "--mac 010000000000 is a multicast address (the first octet is odd): a phone's MAC is unicast, e.g. 0080F0C571EB"
        ),
        (
            ["boot", "--mac", "00:00:00:00:00:00", "--once"],
            "--mac 000000000000 is all zeros, which no device has: give the phone's own MAC, e.g. 0080F0C571EB"
        ),
        (["boot", "--mac", mac, "--prov-url", "file:///etc/passwd", "--once"], "file"),
        (["boot", "--mac", mac, "--prov-url", "gopher://h/", "--once"], "gopher"),
        (["boot", "--mac", mac, "--time-scale", "-3", "--once"], "time-scale"),
        (["boot", "--mac", mac, "--log-format", "xml", "--once"], "log-format"),
        (["boot", "--once"], "--mac"),
        (["boot", "--mac", mac, "--no-such-flag"], "no-such-flag"),
        // A duration past Int64 milliseconds trapped in parsing; one just inside it, when added to the clock.
        (
            ["boot", "--mac", mac, "--duration", "99999999999999999999d"],
            "--duration 99999999999999999999d: must be at most"
        ),
        (["boot", "--mac", mac, "--duration", "106751991167d"], "must be at most 100 years"),
        (["boot", "--mac", mac, "--duration=-5s"], "--duration -5s: must be more than 0"),
        (["boot", "--mac", mac, "--time-scale", "1e12"], "up to 1e9"),
        // What libcurl would only refuse at fetch time (exit 11), and a CA file every HTTPS transfer would fail on.
        (["boot", "--mac", mac, "--prov-url", "http://127.0.0.1:65536/", "--once"], "the port \"65536\" is not"),
        (["boot", "--mac", mac, "--prov-url", "http://h/my file.cfg", "--once"], "holds a space"),
        (
            ["boot", "--mac", mac, "--prov-url", "http://h/", "--ca-file", "/etc", "--once"],
            "--ca-file /etc is not a file"
        ),
        (
            ["boot", "--mac", mac, "--prov-url", "http://h/", "--ca-file", "/etc/passwd", "--once"],
            "not a PEM certificate"
        ),
        // An empty path was taken for a file and refused as an unusable flash (exit 65).
        (["boot", "--flash", "", "--once"], "--flash \"\": an empty path; give the flash file's path"),
        (["events", "--flash", ""], "--flash \"\": an empty path"),
        (["config", "show", "--flash", ""], "--flash \"\": an empty path"),
        (["factory-reset", "--flash", ""], "--flash \"\": an empty path"),
        (["events", ""], "IMAGE \"\": an empty path"),
        (["flash", "info", ""], "IMAGE \"\": an empty path"),
        (["flash", "export", "", "--to", "x.json"], "IMAGE \"\": an empty path"),
        (["flash", "import", "", "--to", "x.flash"], "FILE \"\": an empty path"),
        (["flash", "diff", "a.flash", ""], "B \"\": an empty path"),
        (["flash", "extract", "s.db", "--mac", mac, "--to", ""], "--to \"\": an empty path"),
        // Without --flash the MAC names the file (Storage/<MAC>.flash): one no phone can have was looked up as a
        // missing flash (exit 65), or for `config set`, `factory-reset`, a file no phone can own.
        (
            ["config", "show", "--mac", "0180F0000001"],
            "--mac 0180F0000001 is a multicast address (the first octet is odd): a phone's MAC is unicast, e.g. 0080F0C571EB"
        ),
        (
            ["config", "set", "NTP_ADDR", "x", "--mac", "FFFFFFFFFFFF"],
            "--mac FFFFFFFFFFFF is the broadcast address: a phone's MAC is unicast"
        ),
        (["events", "--mac", "000000000000"], "--mac 000000000000 is all zeros, which no device has"),
        (["factory-reset", "--mac", "0180F0000001"], "--mac 0180F0000001 is a multicast address"),
        // Printed nothing and exited 0.
        (["events", "--mac", mac, "--boot=-1"], "--boot -1: boots are counted from 1"),
        (["events", "--mac", mac, "--last", "0"], "--last 0: give how many of the newest entries, 1 or more"),
    ]

    @Test(arguments: badCommandLines)
    func badCommandLinesExit64(args: [String], mentions: String) throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-cli")
        let r = try vphone(args, cwd: dir)
        #expect(r.code == 64, "\(args): \(r.stderr)")
        #expect(r.stderr.contains(mentions), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/Storage"))
    }

    @Test func unusableFlashExits65AndIsLeftAlone() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-cli")
        let flash = dir + "/broken.flash"
        let garbage = Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try garbage.write(to: URL(fileURLWithPath: flash))
        let r = try vphone(["boot", "--flash", flash, "--prov-url", "http://127.0.0.1:1/", "--once"], cwd: dir)
        #expect(r.code == 65, "\(r.stderr)")
        #expect(r.stderr.contains(flash))
        #expect(try Data(contentsOf: URL(fileURLWithPath: flash)) == garbage)
        #expect(try vphone(["config", "show", "--flash", flash], cwd: dir).code == 65)
    }

    @Test func badProfileExits65() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-cli")
        try "{\"model\": 3}".write(toFile: dir + "/bad.json", atomically: true, encoding: .utf8)
        let r = try vphone(["boot", "--mac", mac, "--profile", dir + "/bad.json", "--once"], cwd: dir)
        #expect(r.code == 65)
        #expect(r.stderr.contains("bad.json"))
    }

    /// `vphone boot` flags set by `VPHONE_*` variables: an error names the variable, since the command line shows no
    /// such flag; a value starting with `-` is the flag's value.
    static let badVariables: [([String: String], Int32, [String])] = [
        (["VPHONE_MAC": "zz"], 64, ["The value 'zz' is invalid for '--mac <mac>'", "--mac is VPHONE_MAC"]),
        (["VPHONE_MAC": "333300000001"], 64, ["--mac 333300000001 is a multicast address", "--mac is VPHONE_MAC"]),
        (
            ["VPHONE_MAC": mac, "VPHONE_TIME_SCALE": "-1"], 64,
            ["--time-scale must be a positive number", "(--time-scale is VPHONE_TIME_SCALE from the environment: "]
        ),
        (["VPHONE_MAC": mac, "VPHONE_DURATION": "-5"], 64, ["--duration -5: must be more than 0", "VPHONE_DURATION"]),
        (["VPHONE_MAC": mac, "VPHONE_INSECURE": "maybe"], 64, ["'maybe'", "--insecure is VPHONE_INSECURE"]),
        (["VPHONE_MAC": mac, "VPHONE_CA_FILE": "/nonexistent/ca.pem"], 64, ["--ca-file is VPHONE_CA_FILE"]),
        // found at run time, after parsing: the message is about the flag, or about the path the variable holds
        (
            ["VPHONE_MAC": mac, "VPHONE_HTTP_PORT": "0", "VPHONE_HTTP_BIND": "nope"], 64,
            ["--http-bind nope: not an IPv4 or IPv6 address", "--http-bind is VPHONE_HTTP_BIND"]
        ),
        (
            ["VPHONE_REPLAY": "/nonexistent/recording"], 65,
            ["recording /nonexistent/recording", "--replay is VPHONE_REPLAY from the environment: correct or unset it"]
        ),
    ]

    @Test(arguments: badVariables)
    func badVariablesAreNamed(environment: [String: String], code: Int32, says: [String]) throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-env")
        let r = try vphone(["boot", "--once", "--prov-url", "http://127.0.0.1:1/"], cwd: dir, environment: environment)
        #expect(r.code == code, "\(environment): \(r.stderr)")
        for text in says { #expect(r.stderr.contains(text), "\(environment): \(r.stderr)") }
    }

    @Test func aFlagOnTheCommandLineIsNotBlamedOnAVariable() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-env")
        let r = try vphone(["boot", "--mac", "zz", "--once"], cwd: dir, environment: ["VPHONE_TIME_SCALE": "60"])
        #expect(r.code == 64)
        #expect(r.stderr.contains("'--mac <mac>'") && !r.stderr.contains("environment"), "\(r.stderr)")
    }

    /// `VPHONE_PROFILE` is `--profile` for every command: a file it cannot read is exit 65 naming the variable, never
    /// a silent run on the bundled profile; `--profile` beats it.
    @Test func anUnreadableProfileVariableExits65() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-env")
        let missing = ["VPHONE_PROFILE": dir + "/missing.json"]
        let says = "profile \(dir)/missing.json (from VPHONE_PROFILE): cannot be read"
        let boot = try vphone(["boot", "--mac", mac, "--once"], cwd: dir, environment: missing)
        #expect(boot.code == 65, "\(boot.stderr)")
        #expect(boot.stderr.contains(says) && boot.stderr.contains("unset VPHONE_PROFILE"), "\(boot.stderr)")
        let fleet = try vphone(
            ["fleet", "--count", "1", "--prov-url", "http://127.0.0.1:1/", "--quiet"],
            cwd: dir,
            environment: missing
        )
        #expect(fleet.code == 65, "\(fleet.stderr)")
        #expect(fleet.stderr.contains(says), "\(fleet.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/Storage"), "no phone booted")
        let flag = try vphone(
            [
                "boot", "--mac", mac, "--once", "--prov-url", "http://127.0.0.1:1/", "--profile",
                TestProfiles.utg300Path,
            ],
            cwd: dir,
            environment: missing
        )
        #expect(flag.code == 11, "\(flag.stderr)")
    }

    @Test func macMustMatchAnExistingFlash() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-cli")
        let port = NginxServer.freePort()
        _ = try vphone(["boot", "--mac", mac, "--prov-url", "http://127.0.0.1:\(port)/", "--once"], cwd: dir)
        let flash = dir + "/Storage/\(mac).flash"
        let r = try vphone(["boot", "--flash", flash, "--mac", "0080F0000001", "--once"], cwd: dir)
        #expect(r.code == 64)
        #expect(r.stderr.contains("belongs to \(mac)"))
        // without --mac, the flash's own MAC is used
        let again = try vphone(
            ["boot", "--flash", flash, "--prov-url", "http://127.0.0.1:\(port)/", "--once"],
            cwd: dir
        )
        #expect(again.code == 11)
    }

    /// With an image given (--flash, or `events IMAGE`), a --mac no phone can have is checked against the image's
    /// own MAC, as any other --mac: the image decides, not the form of the MAC.
    @Test func withAnImageABadMACIsCheckedAgainstTheImage() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-cli")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let boot = try vphone(
            ["boot", "--mac", mac, "--flash", "p.flash", "--prov-url", "http://127.0.0.1:9/", "--once"],
            cwd: dir
        )
        #expect(boot.code == 11, "\(boot.stderr)")
        for args in [
            ["config", "show", "--flash", "p.flash", "--mac", "0180F0000001"],
            ["events", "p.flash", "--mac", "0180F0000001"],
            ["factory-reset", "--flash", "p.flash", "--mac", "0180F0000001"],
        ] {
            let r = try vphone(args, cwd: dir)
            #expect(r.code == 64, "\(args): \(r.stderr)")
            #expect(
                r.stderr.contains("flash p.flash belongs to \(mac), not 0180F0000001: drop --mac"),
                "\(args): \(r.stderr)"
            )
        }
    }

    @Test func factoryResetKeepsOnlyTheIdentity() throws {
        let server = try ProvServer()
        let dir = try makeTemporaryDirectory(prefix: "vphone-cli")
        #expect(try vphone(["boot", "--mac", mac, "--prov-url", server.base, "--once"], cwd: dir).code == 0)
        #expect(try vphone(["config", "set", "NTP_ADDR", "x", "--mac", mac], cwd: dir).code == 0)
        let reset = try vphone(["factory-reset", "--mac", mac], cwd: dir)
        #expect(reset.code == 0, "\(reset.stderr)")
        let config = try configShow(flash: dir + "/Storage/\(mac).flash", cwd: dir)
        #expect(config.values.allSatisfy { $0.source == "factory" })
        let events = try vphone(["events", "--mac", mac, "--json"], cwd: dir)
        let lines = events.stdout.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains("factory-reset") == true)
    }

    /// `events --boot N` for a boot the image never had printed nothing and exited 0, as if that boot had logged
    /// nothing (every boot logs at least its power-on): now it names the boots the image holds, exit 64.
    @Test func eventsOfABootTheImageDoesNotHoldSayWhichItHolds() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-cli")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for _ in 1...3 {
            let r = try vphone(
                ["boot", "--mac", mac, "--flash", "p.flash", "--prov-url", "http://127.0.0.1:9/", "--once"],
                cwd: dir
            )
            #expect(r.code == 11, "\(r.stderr)")
        }
        for args in [["--boot", "99"], ["--boot", "0"], ["--boot", "4", "--timeline"], ["--boot", "4", "--json"]] {
            let r = try vphone(["events", "p.flash"] + args, cwd: dir)
            #expect(r.code == 64, "\(args): \(r.stderr)")
            #expect(r.stdout.isEmpty, "\(args): \(r.stdout)")
            #expect(
                r.stderr.contains(
                    "vphone: no boot \(args[1]) in the event log of p.flash: it holds boots 1...3; give one of those, "
                        + "or leave out --boot"
                ),
                "\(args): \(r.stderr)"
            )
        }
        let second = try vphone(["events", "p.flash", "--boot", "2"], cwd: dir)
        #expect(second.code == 0, "\(second.stderr)")
        #expect(second.stdout.contains("power on (boot 2)"), "\(second.stdout)")
        // After a factory reset the log holds boot 0 alone (before the first boot): shown, and named when asked.
        #expect(try vphone(["factory-reset", "--flash", "p.flash"], cwd: dir).code == 0)
        let reset = try vphone(["events", "p.flash", "--boot", "0"], cwd: dir)
        #expect(reset.code == 0 && reset.stdout.contains("factory-reset"), "\(reset.stderr)")
        let gone = try vphone(["events", "p.flash", "--boot", "2"], cwd: dir)
        #expect(gone.code == 64)
        #expect(gone.stderr.contains("it holds boot 0; give --boot 0, or leave out --boot"), "\(gone.stderr)")
    }

    @Test func configShowJSONShape() throws {
        let server = try ProvServer()
        let dir = try makeTemporaryDirectory(prefix: "vphone-cli")
        #expect(try vphone(["boot", "--mac", mac, "--prov-url", server.base, "--once"], cwd: dir).code == 0)
        let r = try vphone(["config", "show", "--mac", mac, "--json"], cwd: dir)
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: [String: String]]
        )
        #expect(object["SIP_AUTHID_1"]?["value"] == "201")
        #expect(object["SIP_AUTHID_1"]?["source"] == "standard")
        #expect(object["SIP_AUTHID_1"]?["perm"] == "R")
        #expect(
            Set(object.values.compactMap { $0["source"] }).isSubset(of: [
                "standard", "product", "master", "initial", "local", "factory",
            ])
        )
    }

    @Test func everyCommandHasHelp() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-cli")
        for cmd in [[], ["boot"], ["config"], ["config", "show"], ["config", "set"], ["events"], ["factory-reset"]] {
            let r = try vphone(cmd + ["--help"], cwd: dir)
            #expect(r.code == 0, "\(cmd)")
            #expect(r.stdout.contains("USAGE"), "\(cmd)")
        }
    }
}
