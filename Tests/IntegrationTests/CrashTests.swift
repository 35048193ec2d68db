import ConfigFormats
import Flash
import Foundation
import PhoneCore
import Testing
import VPhoneTesting

/// Spec §6: a crash or power loss at any moment never leaves flash half-written. vphone boot is killed with SIGKILL
/// at random moments while it provisions and writes flash, 200 times; after each kill the image must pass SQLite's
/// integrity check and its saved configuration must be whole: the parameters are exactly the merge of the saved files
/// (they are written in one transaction), and the saved files are all of one server version or the other.
@Suite("Crash consistency under SIGKILL", .serialized)
struct CrashTests {
    @Test func twoHundredKillsNeverLeaveAHalfWrittenFlash() throws {
        let server = try ProvServer()
        let com = try String(contentsOfFile: server.root + "/ConfigCom.cfg", encoding: .utf8)
        // Versions A and B of the master file, resynced every phone minute (0.1 ms of real time at 600,000x).
        let versions = [
            com.replacingOccurrences(of: "1440", with: "1"),
            com.replacingOccurrences(of: "1440", with: "1").replacingOccurrences(of: "pool.ntp.org", with: "ntp.b"),
        ]
        let dir = try makeTemporaryDirectory(prefix: "vphone-crash")
        let flash = dir + "/phone.flash"
        let profile = PreparedProfile(TestProfiles.utg300)
        var random = SystemRandomNumberGenerator()
        var failures: [String] = []
        let trials = Int(ProcessInfo.processInfo.environment["VPHONE_CRASH_TRIALS"] ?? "") ?? 200
        // Kill moments are spread over how long one whole boot takes here and now (a busy machine starts processes
        // slowly; fixed delays would then kill most trials before the phone powers on and prove nothing).
        let started = Date()
        let probe = try vphone(
            ["boot", "--mac", mac, "--flash", dir + "/probe.flash", "--prov-url", server.base, "--once"],
            cwd: dir
        )
        #expect(probe.code == 0, "\(probe.stderr)")
        let bootMicroseconds = UInt32(min(2_000_000, max(120_000, Date().timeIntervalSince(started) * 1.5e6)))
        for trial in 0..<trials {
            try server.write("ConfigCom.cfg", versions[trial % 2])
            let running = try startVPhone(
                [
                    "boot", "--mac", mac, "--flash", flash, "--prov-url", server.base, "--time-scale", "600000",
                    "--log-level", "critical",
                ],
                cwd: dir
            )
            usleep(UInt32.random(in: 2_000...bootMicroseconds, using: &random))
            running.signal(SIGKILL)
            _ = running.wait()
            // Killed before the image existed: nothing was saved yet, which is the old state.
            if !FileManager.default.fileExists(atPath: flash) { continue }
            do {
                let store = try FlashStore.open(at: flash, readOnly: true)
                defer { store.close() }
                try store.integrityCheck()
                let snapshot = try store.load()
                var inputs: [MergeInput] = []
                for (kind, saved) in snapshot.savedFiles {
                    let doc = try ConfigParser.parse(saved.body, file: "saved \(kind)", accepting: profile.formats)
                    inputs.append(MergeInput(kind: kind, document: doc, fresh: true))
                }
                let merged = Merge.effective(files: inputs, localEdits: snapshot.localEdits)
                if !snapshot.savedFiles.isEmpty && merged.parameters != snapshot.parameters {
                    failures.append("trial \(trial): parameters are not the merge of the saved files")
                }
                if let ntp = snapshot.parameters["NTP_ADDR"]?.value, !["pool.ntp.org", "ntp.b"].contains(ntp) {
                    failures.append("trial \(trial): NTP_ADDR is \(ntp)")
                }
            } catch {
                failures.append("trial \(trial): \(error)")
            }
        }
        print("crash consistency: \(trials) SIGKILL trials, \(failures.count) failures")
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        // The phone really was provisioning and writing while it was killed.
        let store = try FlashStore.open(at: flash, readOnly: true)
        let boots = try store.load().bootCount
        print("crash consistency: the phone powered on \(boots) times across the trials")
        #expect(boots >= trials / 10)
    }
}
