/// The re-provisioning timers of spec §7, as pure functions of the effective configuration.
public struct TimerSettings: Hashable, Sendable {
    public var cyclic: Bool
    /// Minutes, 1...40320.
    public var cyclicInterval: Int64
    /// Minutes.
    public var retryInterval: Int64
    /// Minutes after midnight (device clock) of the daily resync, when `CFG_RESYNC_TIME` is valid.
    public var resyncMinuteOfDay: Int64?
    /// Device clock offset from UTC in minutes (`TIME_ZONE`).
    public var timeZoneMinutes: Int64
    /// Values that were invalid and replaced by their defaults, as sentences for the event log.
    public var problems: [String]

    public static let maxCyclicInterval: Int64 = 40320
    public static let maxRetryInterval: Int64 = 1440

    /// Reads the timer parameters; an invalid value falls back to its documented default and is reported.
    public init(value: (String) -> String?) {
        var problems: [String] = []
        func minutes(_ name: String, default def: Int64, max: Int64) -> Int64 {
            let raw = value(name) ?? ""
            if let v = ValueForm.minutes(raw, max: max) { return v }
            problems.append("\(ValueForm.minutes(max: max).sentence(name, raw)); using \(def)")
            return def
        }
        let cyclicRaw = value("CFG_CYCLIC") ?? "N"
        let cyclicYes = ValueForm.yesNo(cyclicRaw)
        cyclic = cyclicYes ?? false
        if cyclicYes == nil {
            problems.append("\(ValueForm.yesNo.sentence("CFG_CYCLIC", cyclicRaw)); the cyclic resync is off")
        }
        cyclicInterval = minutes("CFG_CYCLIC_INTVL", default: 10080, max: Self.maxCyclicInterval)
        retryInterval = minutes("CFG_RTRY_INTVL", default: 30, max: Self.maxRetryInterval)
        let resync = (value("CFG_RESYNC_TIME") ?? "").trimmingWhitespace()
        if resync.isEmpty {
            resyncMinuteOfDay = nil
        } else if let m = ValueForm.timeOfDay(resync) {
            resyncMinuteOfDay = m
        } else {
            resyncMinuteOfDay = nil
            problems.append("\(ValueForm.timeOfDay.sentence("CFG_RESYNC_TIME", resync)); the daily resync is off")
        }
        let tz = (value("TIME_ZONE") ?? "0").trimmingWhitespace()
        if tz.isEmpty {
            timeZoneMinutes = 0
        } else if let v = ValueForm.timeZone(tz) {
            timeZoneMinutes = v
        } else {
            timeZoneMinutes = 0
            problems.append("\(ValueForm.timeZone.sentence("TIME_ZONE", tz)); using 0")
        }
        self.problems = problems
    }

    /// `Y`/`Yes` (any case) is true; everything else false (spec §2).
    public static func isYes(_ v: String) -> Bool { ValueForm.yesNo(v) == true }

    /// The timers to arm after a cycle that ended at `now` (spec §7).
    ///
    /// - A valid `CFG_RESYNC_TIME` arms only the daily resync, at its next occurrence on the device clock.
    /// - Otherwise a failed cycle arms the retry `CFG_RTRY_INTVL` minutes later, and `CFG_CYCLIC=Y` arms the cyclic
    ///   timer at the next multiple of `CFG_CYCLIC_INTVL` counted from start-up.
    public func plan(now: PhoneTime, bootedAt: PhoneTime, failed: Bool) -> [TimerKind: PhoneTime] {
        if let minuteOfDay = resyncMinuteOfDay {
            return [.resync: nextDaily(minuteOfDay: minuteOfDay, after: now)]
        }
        var out: [TimerKind: PhoneTime] = [:]
        if failed { out[.retry] = now.adding(minutes: retryInterval) }
        if cyclic {
            let period = cyclicInterval * 60_000
            let elapsed = now.millisecondsSinceEpoch - bootedAt.millisecondsSinceEpoch
            let k = max(0, elapsed) / period + 1
            out[.cyclic] = bootedAt.adding(milliseconds: k * period)
        }
        return out
    }

    /// The first moment strictly after `now` when the device clock (UTC + TIME_ZONE) reads the given minute of day.
    public func nextDaily(minuteOfDay: Int64, after now: PhoneTime) -> PhoneTime {
        let day: Int64 = 86_400_000
        let offset = timeZoneMinutes * 60_000
        let local = now.millisecondsSinceEpoch + offset
        let midnight = (local >= 0 ? local / day : (local - day + 1) / day) * day
        var target = midnight + minuteOfDay * 60_000
        if target <= local { target += day }
        return PhoneTime(millisecondsSinceEpoch: target - offset)
    }
}

/// The form of a value the phone checks before it uses it: one check per kind of value, shared by the machine
/// (`TimerSettings`, the switches it reads, the URLs it downloads from) and the local-edit rule (`LocalEditRule`), so
/// that the web UI takes no value the phone would then refuse or replace by a default.
public enum ValueForm: Hashable, Sendable {
    /// A whole number of minutes in 1...max (`CFG_CYCLIC_INTVL`, `CFG_RTRY_INTVL`; spec §7).
    case minutes(max: Int64)
    /// `HH:MM` on the 24-hour device clock (`CFG_RESYNC_TIME`; spec §7); empty: no daily resync.
    case timeOfDay
    /// Minutes from UTC in -840...840 (`TIME_ZONE`; spec §8); empty: 0.
    case timeZone
    /// `Y` or `N`; `Yes` and `No`, in any case, too (spec §2).
    case yesNo
    /// A URL the phone downloads from (`ProvisioningURL.candidates`: http, https, tftp, ftp or no scheme, at most 384
    /// characters); empty: unset.
    case url

    /// The form of the parameter `name`, when the phone checks it.
    public static func of(_ name: String) -> ValueForm? { forms[name] }

    private static let forms: [String: ValueForm] = [
        "CFG_CYCLIC_INTVL": .minutes(max: TimerSettings.maxCyclicInterval),
        "CFG_RTRY_INTVL": .minutes(max: TimerSettings.maxRetryInterval),
        "CFG_RESYNC_TIME": .timeOfDay,
        "TIME_ZONE": .timeZone,
        // The switches the machine reads.
        "CFG_CYCLIC": .yesNo, "PROVISION_ENABLE": .yesNo, "SIPPNP_ENABLE": .yesNo, "OPTION160_ENABLE": .yesNo,
        "OPTION159_ENABLE": .yesNo, "OPTION66_ENABLE": .yesNo, "HTTP_ENABLE_PROXY": .yesNo,
        // The URLs it downloads from (spec §2, §3).
        "USR_PROV_SVR_URL": .url, "CFG_STANDARD_FILE_PATH": .url, "CFG_PRODUCT_FILE_PATH": .url,
        "CFG_MASTER_FILE_PATH": .url, "CFG_ROOT_CERTIFICATE_PATH1": .url, "CFG_ROOT_CERTIFICATE_PATH2": .url,
        "CFG_ROOT_CERTIFICATE_PATH3": .url,
    ]

    /// What a value of this form looks like, for messages: "a time of day HH:MM (00:00-23:59)".
    public var expected: String {
        switch self {
        case .minutes(let max): return "a whole number of minutes in 1...\(max)"
        case .timeOfDay: return "a time of day HH:MM (00:00-23:59), or empty for no daily resync"
        case .timeZone: return "minutes from UTC in -840...840 (e.g. 540 for UTC+9), or empty for 0"
        case .yesNo: return "Y or N (Yes and No, in any case, too)"
        case .url:
            return
                "a URL with http, https, tftp, ftp or no scheme, at most \(ProvisioningURL.maxLength) characters, or empty"
        }
    }

    /// `NAME="value" is not EXPECTED`; a URL's credentials are masked.
    public func sentence(_ name: String, _ value: String) -> String {
        "\(name)=\"\(self == .url ? redactURL(value) : value)\" is not \(expected)"
    }

    /// Why `value` is not of this form, as a sentence naming the parameter, the value and the form; nil when it is.
    /// `macros`: the phone's, for a URL (its length counts with them expanded).
    public func problem(_ name: String, _ value: String, macros: MacroContext) -> String? {
        let trimmed = value.trimmingWhitespace()
        switch self {
        case .minutes(let max):
            return Self.minutes(value, max: max) == nil ? sentence(name, value) : nil
        case .timeOfDay:
            return trimmed.isEmpty || Self.timeOfDay(trimmed) != nil ? nil : sentence(name, value)
        case .timeZone:
            return trimmed.isEmpty || Self.timeZone(trimmed) != nil ? nil : sentence(name, value)
        case .yesNo:
            return Self.yesNo(value) == nil ? sentence(name, value) : nil
        case .url:
            guard !trimmed.isEmpty else { return nil }
            do {
                _ = try ProvisioningURL.candidates(value, macros: macros)
                return nil
            } catch {
                return "\(name)=\"\(redactURL(value))\" is not a URL the phone downloads from: \(error.reason)"
            }
        }
    }

    /// A whole number of minutes in 1...max, surrounding whitespace ignored; nil otherwise.
    public static func minutes(_ raw: String, max: Int64) -> Int64? {
        guard let v = Int64(raw.trimmingWhitespace()), v >= 1, v <= max else { return nil }
        return v
    }

    /// The minute of the day of `HH:MM` (24 h); nil for anything else.
    public static func timeOfDay(_ s: String) -> Int64? {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 2, parts[1].count == 2, let h = Int64(parts[0]),
            let m = Int64(parts[1]),
            (0...23).contains(h), (0...59).contains(m)
        else { return nil }
        return h * 60 + m
    }

    /// Minutes from UTC in -840...840 (UTC-14 to UTC+14), surrounding whitespace ignored; nil otherwise.
    public static func timeZone(_ raw: String) -> Int64? {
        guard let v = Int64(raw.trimmingWhitespace()), abs(v) <= 14 * 60 else { return nil }
        return v
    }

    /// `Y`/`Yes` true, `N`/`No` false (any case, surrounding whitespace ignored); nil for anything else.
    public static func yesNo(_ raw: String) -> Bool? {
        switch raw.trimmingWhitespace().lowercased() {
        case "y", "yes": return true
        case "n", "no": return false
        default: return nil
        }
    }
}
