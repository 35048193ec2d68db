import Foundation
import PhoneCore
import Testing
import VPhoneTesting

/// The field-failure library (Storage/examples) replayed offline: each story keeps its outcome.
@Suite("Field failures replayed from Storage/examples", .serialized)
struct ExampleTests {
    let examples = TestProfiles.repositoryRoot + "/Storage/examples"

    func replay(_ story: String, _ part: String, flash: String, cwd: String) throws -> Run {
        try vphone(["boot", "--replay", "\(examples)/\(story)/\(part)", "--flash", flash], cwd: cwd)
    }

    @Test func master404FallsBackToTheSavedCopy() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-example")
        let flash = dir + "/phone.flash"
        #expect(try replay("master-404", "setup", flash: flash, cwd: dir).code == 0)
        let r = try replay("master-404", "incident", flash: flash, cwd: dir)
        #expect(r.code == 10, "\(r.stderr)")
        let config = try configShow(flash: flash, cwd: dir)
        #expect(config["NTP_ADDR"]! == ("ntp.example.net", "master"))
        let timeline = try vphone(["events", flash, "--timeline"], cwd: dir).stdout
        #expect(timeline.contains("boot 2"))
        #expect(timeline.contains("HTTP 404"))
        #expect(timeline.contains("using the saved copy"))
    }

    @Test func sha256KeyDerivationIsDiagnosed() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-example")
        let flash = dir + "/phone.flash"
        let setup = try replay("sha256-key", "setup", flash: flash, cwd: dir)
        #expect(setup.code == 0, "\(setup.stderr)")
        let r = try replay("sha256-key", "incident", flash: flash, cwd: dir)
        #expect(r.code == 10, "\(r.stderr)")
        #expect(r.stderr.contains("SHA-256"))
        #expect(r.stderr.contains("-md md5"))
        let config = try configShow(flash: flash, cwd: dir)
        #expect(config["NTP_ADDR"]! == ("ntp.example.net", "master"))  // the saved copy, not ntp2
        #expect(config["SIP_AUTHID_1"]! == ("201", "standard"))  // the encrypted standard file was recognised
        #expect(config["CFG_FILE_KEY"]! == ("********", "standard"))
    }

    @Test func malformedInitialFileOnANewPhone() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-example")
        let flash = dir + "/phone.flash"
        let r = try replay("malformed-initial", "incident", flash: flash, cwd: dir)
        #expect(r.code == 11, "\(r.stderr)")
        #expect(r.stderr.contains("CFG_PRODUCT_FILE_PATH"))
        let timeline = try vphone(["events", flash, "--timeline"], cwd: dir).stdout
        #expect(timeline.contains("invalid"))
        #expect(timeline.contains("(line "))
    }

    @Test func localEditKeptUnlessBang() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-example")
        let flash = dir + "/phone.flash"
        #expect(try replay("local-edit", "setup", flash: flash, cwd: dir).code == 0)
        #expect(try vphone(["config", "set", "NTP_ADDR", "ntp.local", "--flash", flash], cwd: dir).code == 0)
        #expect(try vphone(["config", "set", "PHONE_NUMBER_1", "299", "--flash", flash], cwd: dir).code == 0)
        #expect(try replay("local-edit", "incident", flash: flash, cwd: dir).code == 0)
        let config = try configShow(flash: flash, cwd: dir)
        #expect(config["NTP_ADDR"]! == ("ntp.local", "local"))
        #expect(config["PHONE_NUMBER_1"]! == ("201", "standard"))
    }

    @Test func aReplayGivesTheSameTimelineTwice() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-example")
        var timelines: [String] = []
        for n in 1...2 {
            let flash = dir + "/phone\(n).flash"
            #expect(try replay("master-404", "setup", flash: flash, cwd: dir).code == 0)
            #expect(try replay("master-404", "incident", flash: flash, cwd: dir).code == 10)
            timelines.append(try vphone(["events", flash, "--timeline"], cwd: dir).stdout)
        }
        #expect(timelines[0] == timelines[1])
        #expect(timelines[0].contains("2026-11-19"))  // the incident's recorded phone time, not today's
    }

    @Test func recordThenReplayOffline() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-example")
        let recordingDir = dir + "/rec"
        do {
            let server = try ProvServer()
            let r = try vphone(
                ["boot", "--mac", mac, "--prov-url", server.base, "--once", "--record", recordingDir],
                cwd: dir
            )
            #expect(r.code == 0, "\(r.stderr)")
        }  // the server is gone: the replay needs no network
        let mode = try FileManager.default.attributesOfItem(atPath: recordingDir + "/recording.json")[.posixPermissions]
        #expect(mode as? Int == 0o600)
        let r = try vphone(["boot", "--replay", recordingDir], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stderr.contains("booted a copy"))
    }

    @Test func snapshotLeavesTheImageUntouched() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-example")
        let flash = dir + "/phone.flash"
        #expect(try replay("master-404", "setup", flash: flash, cwd: dir).code == 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: flash))
        let r = try vphone(
            ["boot", "--replay", "\(examples)/master-404/incident", "--flash", flash, "--snapshot"],
            cwd: dir
        )
        #expect(r.code == 10, "\(r.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: flash)) == before)
    }
}
