import Foundation
import PhoneCore
import PhoneRuntime

/// The API's JSON bodies: snake_case keys, sorted, times as ISO 8601 phone time, secrets `********`, URL
/// credentials `***`. The shapes of `/config` and `/events` are those of `vphone config show --json` and
/// `vphone events --json`, so one parser reads both.
enum ControlJSON {
    static let mask = "********"

    /// Sorted keys, pretty-printed, `/` left alone, and a final newline (for `curl` in a terminal).
    static func encode(_ object: Any) -> Data {
        do {
            var data = try JSONSerialization.data(
                withJSONObject: object,
                options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            )
            data.append(0x0A)
            return data
        } catch {
            // Only strings, numbers, arrays, dictionaries and NSNull are ever passed in.
            return Data("{\"error\": \"internal\", \"message\": \"JSON encoding failed\"}\n".utf8)
        }
    }

    // MARK: - GET /status

    static func status(_ s: PhoneStatus, host: String) -> [String: Any] {
        var files: [String: Any] = [:]
        for (kind, f) in s.files { files[kind.rawValue] = file(f) }
        var timers: [String: Any] = [:]
        for (kind, at) in s.timers { timers[kind.rawValue] = at.description }
        let next: Any = s.nextTimer.map { ["kind": $0.kind.rawValue, "at": $0.at.description] } ?? NSNull()
        return [
            "state": s.state,
            "ip": host,
            "mac": s.identity.mac.upper,
            "model": s.identity.model,
            "firmware": s.identity.firmware,
            "boot_count": s.bootCount,
            "phone_time": s.now.description,
            "last_cycle": s.lastCycle.map(cycle) ?? NSNull(),
            "files": files,
            "timers": timers,
            "next_timer": next,
            "key_present": s.keyPresent,
            "root_certificate_slots": s.rootCertificateSlots,
        ]
    }

    /// A finished provisioning cycle (`POST /resync`, `/reboot`, `/factory-reset`, and `last_cycle`).
    static func cycle(_ r: CycleReport) -> [String: Any] {
        var files: [String: Any] = [:]
        for (kind, f) in r.files { files[kind.rawValue] = file(f) }
        return [
            "trigger": r.trigger,
            "outcome": r.outcome.name,
            "exit_code": Int(r.outcome.rawValue),
            "started_at": r.startedAt.description,
            "finished_at": r.finishedAt.description,
            "files": files,
        ]
    }

    static func file(_ f: FileStatus) -> [String: Any] {
        [
            "url": redactURL(f.url),
            "outcome": f.outcome.rawValue,
            "reason": redactCredentials(in: f.reason),
            "at": f.at.description,
        ]
    }

    // MARK: - GET /config

    static func config(_ rows: [EffectiveValue]) -> [String: Any] {
        var object: [String: Any] = [:]
        for r in rows { object[r.name] = row(r) }
        return object
    }

    static func parameter(_ r: EffectiveValue) -> [String: Any] {
        var o = row(r)
        o["name"] = r.name
        return o
    }

    private static func row(_ r: EffectiveValue) -> [String: Any] {
        var o: [String: Any] = ["value": shown(r), "source": r.source.rawValue]
        if !r.perm.isEmpty { o["perm"] = r.perm }
        if !r.access.isEmpty { o["access"] = r.access }
        return o
    }

    /// What a listing shows of a value: secrets masked (an empty one stays empty: "not set" is not a secret),
    /// and the password of a `user:password@` URL.
    static func shown(_ r: EffectiveValue) -> String {
        if r.secret { return r.value.isEmpty ? "" : mask }
        return redactCredentials(in: r.value)
    }

    /// Every URL in `text` without its `user:password@`.
    static func redactCredentials(in text: String) -> String {
        guard text.contains("://") else { return text }
        return text.split(separator: " ", omittingEmptySubsequences: false)
            .map { $0.contains("://") ? redactURL(String($0)) : String($0) }
            .joined(separator: " ")
    }

    // MARK: - GET /events

    static func events(_ entries: [LogEntry]) -> [Any] {
        entries.map { e in
            var o: [String: Any] = [
                "time": e.at.description, "boot": e.boot, "level": e.level.rawValue, "kind": e.kind,
                "message": e.message,
            ]
            if !e.fields.isEmpty { o["fields"] = e.fields }
            return o
        }
    }

    // MARK: - PUT /config/NAME

    struct Problem: Error {
        var kind: String
        var message: String
    }

    /// The new value from a `{"value": "..."}` body.
    static func editValue(_ body: Data) -> Result<String, Problem> {
        let expected = "expected {\"value\": \"...\"} (a JSON object with a string \"value\")"
        guard !body.isEmpty else {
            return .failure(Problem(kind: "bad_json", message: "the body is empty: \(expected)"))
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])
        } catch {
            return .failure(Problem(kind: "bad_json", message: "the body is not valid JSON: \(expected)"))
        }
        guard let dictionary = object as? [String: Any] else {
            return .failure(Problem(kind: "bad_json", message: "the body is not a JSON object: \(expected)"))
        }
        guard let raw = dictionary["value"] else {
            return .failure(Problem(kind: "bad_json", message: "the body has no \"value\": \(expected)"))
        }
        guard let value = raw as? String else {
            return .failure(
                Problem(kind: "bad_json", message: "\"value\" must be a JSON string (e.g. {\"value\": \"3600\"})")
            )
        }
        let unknown = dictionary.keys.filter { $0 != "value" }.sorted()
        guard unknown.isEmpty else {
            return .failure(
                Problem(kind: "bad_json", message: "unexpected key(s) \(unknown.joined(separator: ", ")): \(expected)")
            )
        }
        return .success(value)
    }
}
