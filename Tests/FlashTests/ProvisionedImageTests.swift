import Foundation
import PhoneCore
import Testing

@testable import Flash

/// `vphone flash from-config` below the command line: the image a phone would have after downloading given
/// files. (The command-line tests parse real XML and text files; here the documents are built by hand.)
@Suite("Flash image from configuration files")
struct ProvisionedImageTests {
    let directory: TemporaryDirectory

    init() throws { directory = try TemporaryDirectory() }

    static let now = PhoneTime(iso8601: "2026-11-27T08:00:00.000Z") ?? at(0)

    /// FlashTests does not depend on ConfigFormats, so its types are reached through MergeInput's parameters.
    func entries<Entry>(
        _ device: [String: String],
        _ perm: [String: String],
        _ make: (String, String, String) -> Entry
    )
        -> [String: Entry]
    {
        device.reduce(into: [:]) { $0[$1.key] = make($1.key, $1.value, perm[$1.key] ?? "") }
    }

    func file(_ kind: FileKind, _ name: String, _ device: [String: String], perm: [String: String] = [:]) -> ConfigFile
    {
        ConfigFile(
            name: name,
            bytes: Array("<\(name)/>".utf8),
            input: MergeInput(
                kind: kind,
                document: .init(format: .xml, device: entries(device, perm) { .init(name: $0, value: $1, perm: $2) }),
                fresh: false
            ),
            warnings: kind == .product ? ["line 3: DISPLAY_NAME_1 set twice; the first value is kept"] : []
        )
    }

    @Test func anImageAsIfTheFilesHadBeenDownloaded() throws {
        let files = [
            file(
                .master,
                "ConfigCom.cfg",
                ["CFG_CYCLIC": "Y", "CFG_CYCLIC_INTVL": "1440", "TIME_ZONE": "60", "NTP_ADDR": "m"]
            ),
            file(
                .standard,
                "Config0080F0C571EB.cfg",
                ["SIP_PASS_1": "s3cret", "NTP_ADDR": "s", "CFG_FILE_KEY": "abc"],
                perm: ["SIP_PASS_1": "!"]
            ),
            file(.product, "ConfigKX-UTG300.cfg", ["NTP_ADDR": "p", "DISPLAY_NAME_1": "Desk"]),
        ]
        let changes = ProvisionedImage.changes(files: files, profile: utg300, at: Self.now)
        let store = try FlashStore.create(at: directory.file("built.flash"), identity: testIdentity, applying: changes)
        let snapshot = try store.load()
        #expect(snapshot.bootCount == 1)
        #expect(snapshot.savedFiles.count == 3)
        #expect(snapshot.savedFiles[.standard]?.url == "file://Config0080F0C571EB.cfg")
        #expect(snapshot.savedFiles[.standard]?.body == Array("<Config0080F0C571EB.cfg/>".utf8))
        #expect(snapshot.savedFiles[.master]?.savedAt == Self.now)
        #expect(FileKind.deviceFiles.allSatisfy { snapshot.fileStatus[$0]?.outcome == .downloaded })
        #expect(snapshot.fileStatus[.product]?.url == "file://ConfigKX-UTG300.cfg")
        #expect(snapshot.fileStatus[.initial] == nil)
        // spec §4: standard beats product beats master.
        #expect(snapshot.parameters["NTP_ADDR"] == Parameter(name: "NTP_ADDR", value: "s", source: .standard))
        #expect(snapshot.parameters["DISPLAY_NAME_1"]?.source == .product)
        #expect(snapshot.parameters["TIME_ZONE"]?.source == .master)
        #expect(snapshot.parameters["SIP_PASS_1"]?.perm == "!")
        // spec §5: the plain standard file's key is installed.
        #expect(
            snapshot.fileKey == FileKey(key: "abc", installedAt: Self.now, sourceURL: "file://Config0080F0C571EB.cfg")
        )
        // spec §7: CFG_CYCLIC=Y every 1440 minutes from start-up.
        #expect(snapshot.timers == [.cyclic: Self.now.adding(minutes: 1440)])

        let events = try store.events()
        #expect(events.allSatisfy { $0.boot == 1 && $0.at == Self.now })
        #expect(
            events.map(\.kind) == [
                "from-config", "fetched", "fetched", "file-warning", "fetched", "key", "apply", "timer-armed",
            ]
        )
        #expect(events.first?.message.contains("3 configuration file(s) (standard, product, master)") == true)
        #expect(events[1].fields == ["file": "standard", "url": "file://Config0080F0C571EB.cfg", "bytes": "25"])
        #expect(events[3].message.contains("set twice"))
        #expect(events.allSatisfy { !$0.message.contains("s3cret") && !$0.message.contains("abc\"") })
    }

    @Test func anInitialFileAloneAndNoKeyWithoutAStandardFile() throws {
        let files = [
            file(.initial, "KX-UTG300.cfg", ["CFG_STANDARD_FILE_PATH": "http://p/{MAC}.cfg"]),
            file(.master, "ConfigCom.cfg", ["CFG_FILE_KEY": "not-from-master", "CFG_RESYNC_TIME": "03:00"]),
        ]
        let changes = ProvisionedImage.changes(files: files, profile: utg300, at: Self.now)
        #expect(changes.fileKey == nil)
        #expect(changes.parameters?["CFG_STANDARD_FILE_PATH"]?.source == .initial)
        #expect(changes.savedFiles.map(\.kind) == [.initial, .master])
        // A valid CFG_RESYNC_TIME arms only the daily resync (spec §7), at 03:00 UTC (TIME_ZONE 0).
        #expect(changes.armTimers == [.resync: PhoneTime(iso8601: "2026-11-28T03:00:00.000Z") ?? at(0)])
    }
}
