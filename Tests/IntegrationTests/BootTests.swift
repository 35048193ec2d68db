import Flash
import Foundation
import PhoneCore
import Testing
import VPhoneTesting

/// `vphone boot` end to end against a real nginx on 127.0.0.1.
@Suite("vphone boot against nginx", .serialized)
struct BootTests {
    @Test func precedenceAcrossThreeFilesAndExactRequests() throws {
        let server = try ProvServer()
        let dir = try makeTemporaryDirectory(prefix: "vphone-boot")
        let r = try vphone(["boot", "--mac", mac, "--prov-url", server.base + "/", "--once"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        let flash = dir + "/Storage/\(mac).flash"
        let config = try configShow(flash: flash, cwd: dir)
        #expect(config["SIP_AUTHID_1"]! == ("201", "standard"))
        #expect(config["SIP_RGSTR_ADDR_1"]! == ("pbx.example.net", "product"))
        #expect(config["REG_EXPIRE_TIME_1"]! == ("600", "product"))  // product beats master
        #expect(config["NTP_ADDR"]! == ("pool.ntp.org", "master"))
        #expect(config["SIP_RGSTR_PORT_1"]! == ("5060", "factory"))
        #expect(config["SIP_PASS_1"]! == ("********", "standard"))  // secrets masked
        #expect(config["CFG_STANDARD_FILE_PATH"]?.source == "initial")
        let log = try server.requests(atLeast: 4)
        #expect(log.count == 4)
        let paths = log.map { $0.split(separator: "\"")[1] }
        #expect(
            paths == [
                "GET /KX-UTG300.cfg HTTP/1.1", "GET /Config0080F0C571EB.cfg HTTP/1.1",
                "GET /ConfigKX-UTG300.cfg HTTP/1.1",
                "GET /ConfigCom.cfg HTTP/1.1",
            ]
        )
        #expect(log.allSatisfy { $0.contains("\"Panasonic_KX-UTG300/03.210 (0080f0c571eb)\"") })
        // a fresh connection per file (quirk reuseConnection off): four distinct connection serials
        #expect(Set(log.map { $0.split(separator: " ").dropLast().last ?? "" }).count == 4)
        // the flash file is private
        let mode = try FileManager.default.attributesOfItem(atPath: flash)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        // and the password never reached the log
        #expect(!r.stderr.contains("s3cret"))
    }

    @Test func missingProductFileFallsBackToTheSavedCopy() throws {
        let server = try ProvServer()
        let dir = try makeTemporaryDirectory(prefix: "vphone-boot")
        #expect(try vphone(["boot", "--mac", mac, "--prov-url", server.base, "--once"], cwd: dir).code == 0)
        try server.remove("ConfigKX-UTG300.cfg")
        let r = try vphone(["boot", "--mac", mac, "--prov-url", server.base, "--once"], cwd: dir)
        #expect(r.code == 10, "\(r.stderr)")
        #expect(r.stderr.contains("HTTP 404"))
        let config = try configShow(flash: dir + "/Storage/\(mac).flash", cwd: dir)
        #expect(config["SIP_RGSTR_ADDR_1"]! == ("pbx.example.net", "product"))
        let events = try vphone(["events", "--mac", mac, "--boot", "2"], cwd: dir)
        #expect(events.stdout.contains("product file: using the saved copy"))
    }

    @Test func serverDownBootsOnTheSavedConfiguration() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-boot")
        var base = ""
        do {
            let server = try ProvServer()
            base = server.base
            #expect(try vphone(["boot", "--mac", mac, "--prov-url", base, "--once"], cwd: dir).code == 0)
        }  // nginx stopped here
        let flash = dir + "/Storage/\(mac).flash"
        let before = try configShow(flash: flash, cwd: dir)
        let r = try vphone(["boot", "--mac", mac, "--prov-url", base, "--once"], cwd: dir)
        #expect(r.code == 10, "\(r.stderr)")
        #expect(r.stderr.contains("connect"))
        let after = try configShow(flash: flash, cwd: dir)
        #expect(after.mapValues(\.value) == before.mapValues(\.value))
        #expect(after["SIP_AUTHID_1"]! == ("201", "standard"))
    }

    @Test func nothingSavedAndServerDownExits11() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-boot")
        let port = NginxServer.freePort()
        let r = try vphone(["boot", "--mac", mac, "--prov-url", "http://127.0.0.1:\(port)/", "--once"], cwd: dir)
        #expect(r.code == 11, "\(r.stderr)")
    }

    @Test func malformedInitialFileIsRejectedWithFileLineAndReason() throws {
        let server = try ProvServer()
        try server.write("KX-UTG300.cfg", Fixture.seedExample)
        let dir = try makeTemporaryDirectory(prefix: "vphone-boot")
        let r = try vphone(["boot", "--mac", mac, "--prov-url", server.base, "--once"], cwd: dir)
        #expect(r.code == 11, "\(r.stderr)")
        #expect(r.stderr.contains("initial file \(server.base)/KX-UTG300.cfg:"))
        #expect(r.stderr.contains("CFG_PRODUCT_FILE_PATH") || r.stderr.contains("line"))
        #expect(try server.requests(atLeast: 1).count == 1)  // nothing else downloaded
        let config = try configShow(flash: dir + "/Storage/\(mac).flash", cwd: dir)
        #expect(config.values.allSatisfy { $0.source == "factory" })
    }

    /// A URL's user:password@ is a secret wherever the CLI shows a value: config show, events, flash diff and a
    /// default export mask it; --reveal-secrets shows it.
    @Test func urlCredentialsInALocalEditAreMaskedEverywhereTheyAreShown() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-boot")
        let port = NginxServer.freePort()
        _ = try vphone(["boot", "--mac", mac, "--prov-url", "http://127.0.0.1:\(port)/", "--once"], cwd: dir)
        let flash = dir + "/Storage/\(mac).flash"
        try FileManager.default.copyItem(atPath: flash, toPath: dir + "/before.flash")
        let url = "http://carol:CarolPw9@127.0.0.1:\(port)/"
        #expect(try vphone(["config", "set", "USR_PROV_SVR_URL", url, "--flash", flash], cwd: dir).code == 0)
        for args in [
            ["config", "show", "--flash", flash], ["config", "show", "--flash", flash, "--json"],
            ["events", flash], ["events", flash, "--json"], ["flash", "export", flash, "--to", "-"],
            ["flash", "diff", dir + "/before.flash", flash],
        ] {
            let r = try vphone(args, cwd: dir)
            #expect(!r.stdout.contains("CarolPw9") && !r.stderr.contains("CarolPw9"), "\(args): \(r.stdout)")
            #expect(r.stdout.contains("***@127.0.0.1:\(port)"), "\(args): \(r.stdout)")  // JSON escapes the slashes
        }
        let revealed = try vphone(["config", "show", "--flash", flash, "--reveal-secrets"], cwd: dir)
        #expect(revealed.stdout.contains(url))

        // An event written before the phone masked them (or by another tool) is masked when shown.
        let store = try FlashStore.open(at: flash)
        var old = FlashChanges()
        old.events = [
            LogEntry(
                at: PhoneTime(millisecondsSinceEpoch: 1_800_000_000_000),
                boot: 1,
                level: .info,
                kind: "local-edit",
                message: "local edit: USR_PROV_SVR_URL = \"http://dave:DavePw8@prov.test/\"",
                fields: ["url": "http://dave:DavePw8@prov.test/"]
            )
        ]
        try store.apply(old)
        store.close()
        for args in [["events", flash], ["events", flash, "--json"], ["flash", "export", flash, "--to", "-"]] {
            let r = try vphone(args, cwd: dir)
            #expect(r.code == 0 && !r.stdout.contains("DavePw8"), "\(args): \(r.stdout)")
            #expect(r.stdout.contains("***@prov.test"), "\(args): \(r.stdout)")
        }
    }

    @Test func localEditWithAndWithoutBangPerm() throws {
        let server = try ProvServer()
        let dir = try makeTemporaryDirectory(prefix: "vphone-boot")
        let boot = ["boot", "--mac", mac, "--prov-url", server.base, "--once"]
        #expect(try vphone(boot, cwd: dir).code == 0)
        let flash = dir + "/Storage/\(mac).flash"
        #expect(try vphone(["config", "set", "PHONE_NUMBER_2", "777", "--mac", mac], cwd: dir).code == 0)
        #expect(try vphone(["config", "set", "NTP_ADDR", "ntp.local", "--mac", mac], cwd: dir).code == 0)
        // perm="R" refuses local edits
        let refused = try vphone(["config", "set", "SIP_AUTHID_1", "999", "--mac", mac], cwd: dir)
        #expect(refused.code == 65)
        #expect(refused.stderr.contains("read-only"))
        // so does a value the phone would not use, with the same exit code and the form it takes
        let invalid = try vphone(["config", "set", "CFG_CYCLIC_INTVL", "0", "--mac", mac], cwd: dir)
        #expect(invalid.code == 65)
        #expect(invalid.stderr.contains("CFG_CYCLIC_INTVL=\"0\" is not a whole number of minutes in 1...40320"))
        // without "!", the local edit survives provisioning
        #expect(try vphone(boot, cwd: dir).code == 0)
        var config = try configShow(flash: flash, cwd: dir)
        #expect(config["PHONE_NUMBER_2"]! == ("777", "local"))
        #expect(config["NTP_ADDR"]! == ("ntp.local", "local"))
        // with perm="!", the provisioned value overwrites it
        let std = try String(contentsOfFile: server.root + "/Config0080F0C571EB.cfg", encoding: .utf8)
        try server.write(
            "Config0080F0C571EB.cfg",
            std.replacingOccurrences(
                of: "<PHONE_NUMBER>299</PHONE_NUMBER>",
                with: "<PHONE_NUMBER perm=\"!\">299</PHONE_NUMBER>"
            )
        )
        #expect(try vphone(boot, cwd: dir).code == 0)
        config = try configShow(flash: flash, cwd: dir)
        #expect(config["PHONE_NUMBER_2"]! == ("299", "standard"))
        #expect(config["NTP_ADDR"]! == ("ntp.local", "local"))
    }

    @Test func httpsWithATestCA() throws {
        let server = try ProvServer(tls: true)
        let dir = try makeTemporaryDirectory(prefix: "vphone-boot")
        // without the CA: a TLS failure, never silently accepted
        let untrusted = try vphone(["boot", "--mac", mac, "--prov-url", server.base, "--once"], cwd: dir)
        #expect(untrusted.code == 11)
        #expect(untrusted.stderr.contains("tls"))
        let ca = try #require(server.nginx.caCertPath)
        let r = try vphone(["boot", "--mac", mac, "--prov-url", server.base, "--once", "--ca-file", ca], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        let config = try configShow(flash: dir + "/Storage/\(mac).flash", cwd: dir)
        #expect(config["SIP_AUTHID_1"]! == ("201", "standard"))
    }

    @Test func cyclicResyncPicksUpAChangedFileUnderTimeScale() throws {
        let server = try ProvServer()
        let com = try String(contentsOfFile: server.root + "/ConfigCom.cfg", encoding: .utf8)
        try server.write("ConfigCom.cfg", com.replacingOccurrences(of: "1440", with: "1"))  // every phone minute
        let dir = try makeTemporaryDirectory(prefix: "vphone-boot")
        // 600x: a phone minute is 0.1 s
        let running = try startVPhone(
            ["boot", "--mac", mac, "--prov-url", server.base, "--time-scale", "600", "--log-format", "json"],
            cwd: dir
        )
        let flash = dir + "/Storage/\(mac).flash"
        try waitFor(seconds: 20) { (try? configShow(flash: flash, cwd: dir))?["NTP_ADDR"]?.value == "pool.ntp.org" }
        try server.write(
            "ConfigCom.cfg",
            com.replacingOccurrences(of: "1440", with: "1").replacingOccurrences(
                of: "pool.ntp.org",
                with: "ntp.changed"
            )
        )
        try waitFor(seconds: 20) { (try? configShow(flash: flash, cwd: dir))?["NTP_ADDR"]?.value == "ntp.changed" }
        running.signal(SIGTERM)
        let r = running.wait()
        #expect(r.code == 0, "\(r.stderr.suffix(2000))")
        let store = try FlashStore.open(at: flash, readOnly: true)
        try store.integrityCheck()
        let cycles = try store.events().filter { $0.kind == "cycle-start" }
        #expect(cycles.count >= 2)
        #expect(cycles.dropFirst().allSatisfy { $0.fields["trigger"] == "cyclic" })
    }
}

extension BootTests {
    @Test func sigtermDuringADownloadStopsPromptlyAndCleanly() throws {
        // The standard file trickles at 1 byte/s: the phone is mid-download when the signal comes.
        let server = try ProvServer(extraConfig: "location = /Config0080F0C571EB.cfg { limit_rate 1; }")
        let dir = try makeTemporaryDirectory(prefix: "vphone-boot")
        let running = try startVPhone(["boot", "--mac", mac, "--prov-url", server.base], cwd: dir)
        try waitFor(seconds: 10) { (try? server.requests()).map { $0.count >= 1 } ?? false }
        usleep(300_000)
        let sent = Date()
        running.signal(SIGTERM)
        let r = running.wait()
        #expect(Date().timeIntervalSince(sent) < 2)
        #expect(r.code == 0, "\(r.stderr)")
        let store = try FlashStore.open(at: dir + "/Storage/\(mac).flash", readOnly: true)
        try store.integrityCheck()
        #expect(try store.events().contains { $0.kind == "fetch" && $0.fields["file"] == "standard" })
    }
}

func waitFor(seconds: Double, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return }
        usleep(50_000)
    }
    throw TestFailure("condition not met within \(seconds) s")
}
