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
            if let v = Int64(raw.trimmingWhitespace()), v >= 1, v <= max { return v }
            problems.append("\(name)=\"\(raw)\" is not a number of minutes in 1...\(max); using \(def)")
            return def
        }
        cyclic = Self.isYes(value("CFG_CYCLIC") ?? "N")
        cyclicInterval = minutes("CFG_CYCLIC_INTVL", default: 10080, max: Self.maxCyclicInterval)
        retryInterval = minutes("CFG_RTRY_INTVL", default: 30, max: Self.maxRetryInterval)
        let resync = (value("CFG_RESYNC_TIME") ?? "").trimmingWhitespace()
        if resync.isEmpty {
            resyncMinuteOfDay = nil
        } else if let m = Self.parseHHMM(resync) {
            resyncMinuteOfDay = m
        } else {
            resyncMinuteOfDay = nil
            problems.append("CFG_RESYNC_TIME=\"\(resync)\" is not HH:MM (24 h); the daily resync is off")
        }
        let tz = (value("TIME_ZONE") ?? "0").trimmingWhitespace()
        if let v = Int64(tz), abs(v) <= 14 * 60 {
            timeZoneMinutes = v
        } else {
            timeZoneMinutes = 0
            if !tz.isEmpty { problems.append("TIME_ZONE=\"\(tz)\" is not minutes from UTC in -840...840; using 0") }
        }
        self.problems = problems
    }

    /// `Y`/`Yes` (any case) is true; everything else false (spec §2).
    public static func isYes(_ v: String) -> Bool {
        let t = v.trimmingWhitespace().lowercased()
        return t == "y" || t == "yes"
    }

    static func parseHHMM(_ s: String) -> Int64? {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 2, parts[1].count == 2, let h = Int64(parts[0]),
            let m = Int64(parts[1]),
            (0...23).contains(h), (0...59).contains(m)
        else { return nil }
        return h * 60 + m
    }

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
