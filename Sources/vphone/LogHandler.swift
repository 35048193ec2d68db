import Foundation
import Logging

/// Writes log lines to standard error, human-readable or as JSON objects.
struct StreamLogHandler: LogHandler {
    let label: String
    let format: LogFormat
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(label: String, format: LogFormat) {
        self.label = label
        self.format = format
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: Logging.LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        let line: String
        switch format {
        case .human:
            let time = all.removeValue(forKey: "phone_time").map { "\($0)" } ?? isoNow()
            all["boot"] = nil
            let kind = all.removeValue(forKey: "event").map { "\($0)" }
            let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            let level = event.level.rawValue.uppercased().padding(toLength: 8, withPad: " ", startingAt: 0)
            line =
                "\(time) \(level) \(kind.map { "[\($0)] " } ?? "")\(event.message)"
                + (fields.isEmpty ? "" : "  \(fields)")
        case .json:
            var object: [String: String] = [
                "level": event.level.rawValue, "message": "\(event.message)", "label": label,
            ]
            object["time"] = all.removeValue(forKey: "phone_time").map { "\($0)" } ?? isoNow()
            for (k, v) in all { object[k] = "\(v)" }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            line = String(decoding: data, as: UTF8.self)
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    private func isoNow() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date())
    }
}
