import ArgumentParser
import Flash
import Foundation
import PhoneCore

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the flash event log: every transition with its time and reason.",
        discussion: """
            --timeline tells what happened boot by boot: the cycles, each download with its URL and HTTP status, \
            which file won where several set a value, which fallback was taken, the errors and the timers.
            """
    )

    @Argument(help: "The flash image (same as --flash).")
    var image: String?

    @OptionGroup var location: FlashLocation

    @Flag(help: "One JSON object per line.")
    var json = false

    @Flag(help: "What happened, boot by boot and cycle by cycle, for a person reading a field failure.")
    var timeline = false

    @Option(
        help: ArgumentHelp(
            "Only this power-on (1 = the first boot of this flash; 0 = before it, as after a factory reset).",
            discussion: "A boot the log does not hold is a bad command line (exit 64), naming the boots it holds."
        )
    )
    var boot: Int?

    @Option(help: "Only the last N entries.")
    var last: Int?

    func validate() throws {
        if image?.isEmpty == true { throw ValidationError("IMAGE \"\": an empty path; give the flash image's path") }
        if image == nil { try location.requireGiven() }
        if let boot, boot < 0 {
            throw ValidationError(
                "--boot \(boot): boots are counted from 1 (0: before the first boot); see which an image holds with "
                    + "vphone events IMAGE --timeline"
            )
        }
        if let last, last < 1 {
            throw ValidationError("--last \(last): give how many of the newest entries, 1 or more")
        }
        if image != nil && location.flash != nil { throw ValidationError("give the image once: IMAGE or --flash") }
        if json && timeline { throw ValidationError("--json and --timeline exclude each other") }
    }

    func run() throws {
        var where_ = location
        if let image { where_.flash = image }
        let store = try where_.open(readOnly: true)
        let entries: [LogEntry]
        do {
            if timeline { try store.integrityCheck() }
            // No secret reaches the terminal: an old event may quote a URL with its credentials.
            entries = try store.events(boot: boot, limit: last).map(\.withURLCredentialsMasked)
            if let boot, entries.isEmpty {
                // Nothing printed and exit 0 would pass for "that boot logged nothing": a boot always logs its
                // power-on, so the number is wrong for this image, as a --mac of another phone is (exit 64).
                fail(Self.noSuchBoot(boot, in: where_.path, holding: try store.eventBoots()))
                throw Exit.usage
            }
        } catch let error as FlashError {
            fail("\(error)")
            throw Exit.data
        }
        if timeline {
            print(Timeline.render(entries), terminator: "")
            return
        }
        for e in entries {
            if json {
                var o: [String: Any] = [
                    "time": e.at.description, "boot": e.boot, "level": e.level.rawValue, "kind": e.kind,
                    "message": e.message,
                ]
                if !e.fields.isEmpty { o["fields"] = e.fields }
                let data = try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                let level = e.level.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)
                let kind = e.kind.padding(toLength: 13, withPad: " ", startingAt: 0)
                print("\(e.at) #\(e.boot) \(level) \(kind) \(e.message)")
            }
        }
    }
}

extension Events {
    /// Why `--boot boot` shows nothing: the boots the image's event log holds instead, and the fix.
    static func noSuchBoot(_ boot: Int, in image: String, holding boots: [Int]) -> String {
        guard let oldest = boots.first else {
            return "no boot \(boot) in the event log of \(image): the log is empty; leave out --boot"
        }
        // Runs of consecutive boots as ranges: "0, 2...5, 7".
        var runs: [String] = []
        var start = oldest
        for (index, current) in boots.enumerated() where index + 1 == boots.count || boots[index + 1] != current + 1 {
            runs.append(start == current ? "\(start)" : "\(start)...\(current)")
            if index + 1 < boots.count { start = boots[index + 1] }
        }
        let held = (boots.count == 1 ? "boot " : "boots ") + runs.joined(separator: ", ")
        let firstBoot = boots.first { $0 > 0 }
        let dropped =
            boot > 0 && boot < (firstBoot ?? 0)
            ? " (older boots' entries were dropped: the log keeps the newest \(FlashStore.maxEvents))" : ""
        let fix = boots.count == 1 ? "give --boot \(oldest)" : "give one of those"
        return "no boot \(boot) in the event log of \(image): it holds \(held)\(dropped); \(fix), or leave out --boot"
    }
}

/// Renders the event log as a story: boot by boot, cycle by cycle.
enum Timeline {
    static func render(_ entries: [LogEntry]) -> String {
        var out = ""
        var currentBoot: Int?
        for e in entries {
            if e.boot != currentBoot {
                currentBoot = e.boot
                out += "\n" + (e.boot == 0 ? "before the first boot" : "boot \(e.boot)") + "\n"
            }
            guard let line = line(for: e) else { continue }
            let time = String(e.at.description.dropFirst(11).prefix(12))  // HH:MM:SS.mmm
            out += "  \(e.at.description.prefix(10)) \(time)  \(line)\n"
        }
        return out.isEmpty ? "(no events)\n" : String(out.dropFirst())
    }

    private static func line(for e: LogEntry) -> String? {
        let f = e.fields
        let file = f["file"] ?? ""
        let pad = { (s: String) in s.padding(toLength: 13, withPad: " ", startingAt: 0) }
        switch e.kind {
        case "state", "stale":
            return nil
        case "cycle-start":
            return "── cycle (\(f["trigger"] ?? "?"))"
        case "fetch":
            guard let url = f["url"] else { return "   " + e.message }
            return "   \(pad(file)) GET \(url)"
        case "fetched":
            return "   \(pad(file)) → \(f["status"] ?? "?") OK, \(f["bytes"] ?? "?") bytes"
                + (f["encrypted"] == "yes" ? ", decrypted" : "")
        case "fetch-failed":
            let status = f["status"].map { "HTTP \($0)" } ?? (f["class"] ?? "failed")
            return
                "   \(pad(file)) ✗ \(status): \(e.message.components(separatedBy: ": ").dropFirst().joined(separator: ": "))"
        case "invalid-file":
            return "   \(pad(file)) ✗ invalid: \(f["reason"] ?? e.message)" + (f["line"].map { " (line \($0))" } ?? "")
        case "fallback":
            return "   \(pad(file)) ↩ \(e.message.components(separatedBy: ": ").dropFirst().joined(separator: ": "))"
        case "decision":
            return "   decision      \(e.message)"
        case "apply":
            return "   applied       \(e.message)"
        case "cycle-done":
            return "── outcome \(f["outcome"] ?? "?")"
        case "timer-armed":
            return "   timer         \(e.message)"
        default:
            return "   \(pad(e.kind)) \(e.message)"
        }
    }
}
