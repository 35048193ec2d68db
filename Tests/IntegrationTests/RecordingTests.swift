import Foundation
import Testing
import VPhoneTesting

/// `vphone boot --record` and `--replay` with recordings and paths that cannot be used: each is refused before the
/// flash is touched, with the path and the reason.
@Suite("Recordings that cannot be made or trusted")
struct RecordingTests {
    let incident = TestProfiles.repositoryRoot + "/Storage/examples/master-404/incident"

    /// A copy of a recorded incident in `dir/rec`, with an outside file (`dir/outside/secret.cfg`) beside it.
    func sharedRecording(in dir: String) throws -> (recording: String, secret: String) {
        let recording = dir + "/rec"
        try FileManager.default.copyItem(atPath: incident, toPath: recording)
        try FileManager.default.createDirectory(atPath: dir + "/outside", withIntermediateDirectories: true)
        let secret = dir + "/outside/secret.cfg"
        try
            "<PANASIPPhoneConfig><Device><NTP_ADDR>secret-outside-the-recording</NTP_ADDR></Device></PANASIPPhoneConfig>"
            .write(toFile: secret, atomically: true, encoding: .utf8)
        return (recording, secret)
    }

    /// Sets the body of exchange 2 of `recording/recording.json` to `name`.
    func setSecondBody(of recording: String, to name: String) throws {
        let path = recording + "/recording.json"
        var object = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
        )
        var exchanges = try #require(object["exchanges"] as? [[String: Any]])
        exchanges[1]["body"] = name
        object["exchanges"] = exchanges
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
    }

    enum Escape: String, CaseIterable, CustomTestStringConvertible {
        case dotDot, absolute, symlinkedBody, symlinkedFlash
        var testDescription: String { rawValue }
    }

    /// Recordings are shared field artefacts: one naming a file outside its directory (`../`, an absolute path, a
    /// symbolic link out) used to copy that file into the phone's logs and flash.
    @Test(arguments: Escape.allCases)
    func aReplayReadsNoFileOutsideTheRecording(_ escape: Escape) throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-replay-escape")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (recording, secret) = try sharedRecording(in: dir)
        var needle: String
        switch escape {
        case .dotDot:
            try setSecondBody(of: recording, to: "../outside/secret.cfg")
            needle = "exchange 2 (http://prov.example.net/Config0080F0C571EB.cfg): body \"../outside/secret.cfg\""
        case .absolute:
            try setSecondBody(of: recording, to: secret)
            needle = "body \"\(secret)\" is an absolute path"
        case .symlinkedBody:
            try FileManager.default.removeItem(atPath: recording + "/body-0002.bin")
            try FileManager.default.createSymbolicLink(
                atPath: recording + "/body-0002.bin",
                withDestinationPath: secret
            )
            needle = "body \"body-0002.bin\" resolves to "
        case .symlinkedFlash:
            let flash = dir + "/outside/other.flash"
            #expect(try vphone(["boot", "--replay", incident + "/../setup", "--flash", flash], cwd: dir).code == 0)
            try FileManager.default.createSymbolicLink(atPath: recording + "/flash.flash", withDestinationPath: flash)
            needle = "flash image \"flash.flash\" resolves to "
        }
        // Nothing is made: no flash at --flash, and without --flash (the replay boots a copy of the recorded flash
        // in TMPDIR) no copy.
        let flash = dir + "/phone.flash"
        let scratch = dir + "/tmp"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: false)
        let args = ["boot", "--replay", recording] + (escape == .symlinkedFlash ? [] : ["--flash", flash])
        let r = try vphone(args, cwd: dir, environment: ["TMPDIR": scratch])
        #expect(r.code == 65, "\(r.stderr)")
        #expect(r.stderr.contains("recording \(recording)"), "\(r.stderr)")
        #expect(r.stderr.contains(needle), "\(r.stderr)")
        #expect(!r.stderr.contains("secret-outside") && !r.stdout.contains("secret-outside"), "\(r.stderr)")
        if escape != .symlinkedFlash { #expect(!FileManager.default.fileExists(atPath: flash)) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty, "a scratch copy was made")
    }

    @Test func aBodyNameThatStaysInsideTheRecordingIsRead() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-replay-inside")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (recording, _) = try sharedRecording(in: dir)
        try setSecondBody(of: recording, to: "./sub/../body-0002.bin")
        try FileManager.default.createDirectory(atPath: recording + "/sub", withIntermediateDirectories: true)
        let setup = try vphone(["boot", "--replay", incident + "/../setup", "--flash", dir + "/phone.flash"], cwd: dir)
        #expect(setup.code == 0, "\(setup.stderr)")
        let r = try vphone(["boot", "--replay", recording, "--flash", dir + "/phone.flash"], cwd: dir)
        #expect(r.code == 10, "\(r.stderr)")  // the incident's outcome: its master file 404s
    }

    /// `--record` into a path that cannot be a directory used to fail after the flash was made, as "cannot start
    /// the transport: Error Domain=NSCocoaErrorDomain Code=512" and exit 70.
    @Test func aRecordPathThatCannotBeADirectoryIsRefusedBeforeTheFlashIsMade() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-record-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "a file".write(toFile: dir + "/p.txt", atomically: true, encoding: .utf8)
        let r = try bootRecording(into: "p.txt/sub", in: dir)
        #expect(r.code == 64, "\(r.stderr)")
        #expect(r.stderr.contains("--record p.txt/sub: cannot be used (Not a directory"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/phone.flash"))
    }

    /// One boot of a new phone (flash `dir/phone.flash`, a server that is not there) recording into `record`.
    func bootRecording(into record: String, in dir: String) throws -> Run {
        try vphone(
            [
                "boot", "--mac", mac, "--flash", dir + "/phone.flash", "--prov-url", "http://127.0.0.1:9/", "--once",
                "--record", record,
            ],
            cwd: dir
        )
    }

    /// Runs only as a user other than root, who may write into a read-only directory (CI runs as root: there the
    /// "Not a directory" case above is what checks a refusal before the flash is made).
    @Test(.enabled(if: getuid() != 0, "root may write into a read-only directory"))
    func aRecordPathInAReadOnlyDirectoryIsRefusedBeforeTheFlashIsMade() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-record-ro")
        defer {
            chmod(dir + "/ro", 0o700)
            try? FileManager.default.removeItem(atPath: dir)
        }
        try FileManager.default.createDirectory(atPath: dir + "/ro", withIntermediateDirectories: true)
        chmod(dir + "/ro", 0o500)
        let r = try bootRecording(into: "ro/rec", in: dir)
        #expect(r.code == 64, "\(r.stderr)")
        #expect(r.stderr.contains("--record ro/rec: cannot create ro/rec (Permission denied)"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/phone.flash"))
    }

    /// A second `--record` into the same directory used to overwrite the first recording without a word.
    @Test func aDirectoryThatHoldsFilesIsNeverRecordedInto() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-record-full")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let recording = dir + "/rec"
        try FileManager.default.copyItem(atPath: incident, toPath: recording)
        let before = try Data(contentsOf: URL(fileURLWithPath: recording + "/recording.json"))
        let r = try bootRecording(into: recording, in: dir)
        #expect(r.code == 64, "\(r.stderr)")
        #expect(r.stderr.contains("--record \(recording): already holds 4 file(s) (body-0001.bin"), "\(r.stderr)")
        #expect(r.stderr.contains("give a new or empty directory"), "\(r.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: recording + "/recording.json")) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: recording).count == 4)
        #expect(!FileManager.default.fileExists(atPath: dir + "/phone.flash"))
    }

    /// An empty directory is taken, and made private like a new one: the recording holds the flash and its secrets.
    @Test func anEmptyDirectoryIsRecordedIntoAndMadePrivate() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-record-empty")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let recording = dir + "/rec"
        try FileManager.default.createDirectory(
            atPath: recording,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o755]
        )
        let r = try bootRecording(into: recording, in: dir)
        #expect(r.code == 11, "\(r.stderr)")  // no server, nothing saved
        let mode = try FileManager.default.attributesOfItem(atPath: recording)[.posixPermissions]
        #expect(mode as? Int == 0o700)
        #expect(FileManager.default.fileExists(atPath: recording + "/recording.json"))
    }
}

extension RecordingTests {
    /// A body that could not be written (a full disk) used to leave a silent gap in the recording: the result of
    /// writing it was ignored and the boot ended 0. A directory takes the first body's name while that body trickles
    /// in, so its write fails whoever runs the test (root too); the phone runs on, the failure is logged when it
    /// happens, and the exit says the recording is incomplete.
    @Test func aBodyThatCannotBeWrittenIsReportedAndTheRecordingCalledIncomplete() throws {
        let server = try ProvServer(extraConfig: "location = /KX-UTG300.cfg { limit_rate 100; }")
        let dir = try makeTemporaryDirectory(prefix: "vphone-record-gap")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let running = try startVPhone(
            ["boot", "--mac", mac, "--flash", "phone.flash", "--prov-url", server.base, "--once", "--record", "rec"],
            cwd: dir
        )
        // recording.json is written before the first download starts; the first body takes seconds to arrive.
        try waitFor(seconds: 20) { FileManager.default.fileExists(atPath: dir + "/rec/recording.json") }
        try FileManager.default.createDirectory(atPath: dir + "/rec/body-0001.bin", withIntermediateDirectories: false)
        let r = running.wait()
        #expect(r.code == 65, "\(r.stderr)")
        #expect(
            r.stderr.contains(
                "recording rec: cannot write body-0001.bin (File exists); the recording is incomplete (the phone "
                    + "keeps running)"
            ),
            "\(r.stderr)"
        )
        #expect(
            r.stderr.contains(
                "vphone: recording rec is incomplete: the body of 1 exchange was not saved, body-0001.bin (File "
                    + "exists); a replay of it lacks them: make room on its disk (or record into another directory) "
                    + "and record again (the boot itself ended with exit code 0)"
            ),
            "\(r.stderr)"
        )
        // Nothing else was lost: the other exchanges and their bodies are in the recording.
        let manifest = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: dir + "/rec/recording.json"))
        )
        let exchanges = try #require((manifest as? [String: Any])?["exchanges"] as? [[String: Any]])
        #expect(exchanges.count == 4, "\(exchanges)")
        #expect(exchanges.first?["body"] == nil && exchanges.first?["status"] as? Int == 200, "\(exchanges)")
        for exchange in exchanges.dropFirst() {
            let body = try #require(exchange["body"] as? String)
            #expect(FileManager.default.fileExists(atPath: dir + "/rec/" + body))
        }
    }
}
