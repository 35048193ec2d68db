// The data every part of vphone speaks: identity, files, parameters with provenance, timers, events.
// Pure values, no I/O (ARCHITECTURE rule 1).

// MARK: - Time

/// A moment on the phone's own clock, in milliseconds since 1970-01-01 UTC.
///
/// The phone never reads a clock itself: the runtime passes the time in with every event, so a test
/// can run a week of timers in milliseconds (spec §7, ARCHITECTURE rule 6).
public struct PhoneTime: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var millisecondsSinceEpoch: Int64

    public init(millisecondsSinceEpoch: Int64) { self.millisecondsSinceEpoch = millisecondsSinceEpoch }

    public static func < (a: PhoneTime, b: PhoneTime) -> Bool { a.millisecondsSinceEpoch < b.millisecondsSinceEpoch }

    public func adding(minutes: Int64) -> PhoneTime { adding(milliseconds: minutes * 60_000) }
    public func adding(milliseconds: Int64) -> PhoneTime {
        PhoneTime(millisecondsSinceEpoch: millisecondsSinceEpoch + milliseconds)
    }

    /// ISO 8601 in UTC with milliseconds, e.g. `2026-11-27T08:00:00.000Z`.
    public var description: String { CivilTime(utcMilliseconds: millisecondsSinceEpoch).iso8601 }
}

/// Calendar arithmetic without Foundation, enough for `CFG_RESYNC_TIME` and for printing times.
public struct CivilTime: Sendable {
    public var year: Int64, month: Int64, day: Int64, hour: Int64, minute: Int64, second: Int64, millisecond: Int64

    public init(utcMilliseconds raw: Int64) {
        // Years -99999...99999 are plenty; clamping keeps a hand-edited image from overflowing the arithmetic.
        let ms = min(max(raw, -3_000_000_000_000_000), 3_000_000_000_000_000)
        let days = ms >= 0 ? ms / 86_400_000 : (ms - 86_399_999) / 86_400_000
        let rest = ms - days * 86_400_000
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        day = doy - (153 * mp + 2) / 5 + 1
        month = mp < 10 ? mp + 3 : mp - 9
        year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        hour = rest / 3_600_000
        minute = rest / 60_000 % 60
        second = rest / 1000 % 60
        millisecond = rest % 1000
    }

    public var iso8601: String {
        func pad(_ v: Int64, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))."
            + "\(pad(millisecond, 3))Z"
    }
}

// MARK: - Identity

/// A MAC address: 12 hex digits (spec §1).
public struct MAC: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The 48-bit value.
    public let value: UInt64

    public init(value: UInt64) { self.value = value & 0xFFFF_FFFF_FFFF }

    /// Accepts `0080F0C571EB`, `0080f0c571eb`, `00:80:F0:C5:71:EB` or `00-80-F0-C5-71-EB`.
    public init?(_ text: String) {
        var digits = Array(text.utf8)
        if digits.count == 17 {
            let separators = stride(from: 2, to: 17, by: 3).map { digits[$0] }
            guard let first = separators.first, first == UInt8(ascii: ":") || first == UInt8(ascii: "-"),
                separators.allSatisfy({ $0 == first })
            else { return nil }
            digits = digits.enumerated().filter { $0.offset % 3 != 2 }.map(\.element)
        }
        guard digits.count == 12 else { return nil }
        var v: UInt64 = 0
        for d in digits {
            guard let h = hexValue(d) else { return nil }
            v = v << 4 | UInt64(h)
        }
        value = v
    }

    /// `{MAC}`: upper case, no separators.
    public var upper: String { hex(uppercase: true) }
    /// `{mac}`: lower case, no separators.
    public var lower: String { hex(uppercase: false) }
    public var description: String { upper }

    public func advanced(by n: UInt64) -> MAC { MAC(value: value &+ n) }

    /// A multicast address: the least significant bit of the first octet is set (the first octet is odd). The
    /// broadcast address FFFFFFFFFFFF is one.
    public var isMulticast: Bool { value & 0x0100_0000_0000 != 0 }

    /// Why no phone can have this MAC, as the end of a sentence starting with it ("is a multicast address ..."); nil
    /// for a unicast address other than all zeros. A phone's (any device's) own MAC is unicast. Flash images and
    /// stores are not checked: one may already hold such a MAC.
    public var notAPhoneMAC: String? {
        if value == 0 { return "is all zeros, which no device has" }
        if value == 0xFFFF_FFFF_FFFF { return "is the broadcast address" }
        if isMulticast { return "is a multicast address (the first octet is odd)" }
        return nil
    }
    public static func < (a: MAC, b: MAC) -> Bool { a.value < b.value }

    private func hex(uppercase: Bool) -> String {
        String(unsafeUninitializedCapacity: 12) { out in
            for i in 0..<12 { out[i] = hexDigit(i, uppercase: uppercase) }
            return 12
        }
    }

    /// Appends the 12 digits of `upper` or `lower` (a fleet expands a MAC into a URL for every phone).
    func appendHex(uppercase: Bool, to out: inout [UInt8]) {
        for i in 0..<12 { out.append(hexDigit(i, uppercase: uppercase)) }
    }

    @inline(__always) private func hexDigit(_ i: Int, uppercase: Bool) -> UInt8 {
        let d = UInt8((value >> UInt64((11 - i) * 4)) & 0xF)
        return d < 10 ? d + UInt8(ascii: "0") : d - 10 + (uppercase ? UInt8(ascii: "A") : UInt8(ascii: "a"))
    }
}

@inline(__always) func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// What a phone is, as kept in flash and never cleared by a factory reset (spec §9).
public struct Identity: Hashable, Sendable {
    public var mac: MAC
    public var model: String
    public var firmware: String
    public var createdAt: PhoneTime

    public init(mac: MAC, model: String, firmware: String, createdAt: PhoneTime) {
        self.mac = mac
        self.model = model
        self.firmware = firmware
        self.createdAt = createdAt
    }

    /// A phone of `profile`'s model and firmware, made now.
    public init(mac: MAC, profile: DeviceProfile, createdAt: PhoneTime) {
        self.init(mac: mac, model: profile.model, firmware: profile.firmwareVersion, createdAt: createdAt)
    }
}

// MARK: - Files and parameters

/// The four configuration files of a provisioning cycle, in download order (spec §3).
public enum FileKind: String, CaseIterable, Hashable, Sendable, Codable {
    case initial, standard, product, master

    /// The `<CfgFiles>` parameter naming this file's URL; nil for the initial file.
    public var pathParameter: String? {
        switch self {
        case .initial: return nil
        case .standard: return "CFG_STANDARD_FILE_PATH"
        case .product: return "CFG_PRODUCT_FILE_PATH"
        case .master: return "CFG_MASTER_FILE_PATH"
        }
    }

    /// The three device files, in download order.
    public static let deviceFiles: [FileKind] = [.standard, .product, .master]

    /// By case, not by raw value: a `String` raw value makes the standard library hash and compare the name's text,
    /// and the machine keys a dozen dictionaries by file kind for every phone.
    public func hash(into hasher: inout Hasher) { hasher.combine(caseNumber) }
    public static func == (a: FileKind, b: FileKind) -> Bool { a.caseNumber == b.caseNumber }
    private var caseNumber: UInt8 {
        switch self {
        case .initial: 0
        case .standard: 1
        case .product: 2
        case .master: 3
        }
    }
}

/// Where an effective value came from (spec §4). Ordered from weakest to strongest provisioned source.
public enum ParameterSource: String, CaseIterable, Hashable, Sendable, Codable {
    case factory, initial, master, product, standard, local

    public init(_ kind: FileKind) {
        switch kind {
        case .initial: self = .initial
        case .standard: self = .standard
        case .product: self = .product
        case .master: self = .master
        }
    }

    /// By case, not by raw value (as `FileKind`): every cycle counts its values by source.
    public func hash(into hasher: inout Hasher) { hasher.combine(caseNumber) }
    public static func == (a: ParameterSource, b: ParameterSource) -> Bool { a.caseNumber == b.caseNumber }
    /// The index in `allCases` (also what a `ParameterTable` entry keeps).
    var caseNumber: UInt8 {
        switch self {
        case .factory: 0
        case .initial: 1
        case .master: 2
        case .product: 3
        case .standard: 4
        case .local: 5
        }
    }
}

/// The `perm` attribute of a provisioned parameter (spec §4).
public struct Perm: Hashable, Sendable, CustomStringConvertible {
    public var raw: String
    public init(_ raw: String) { self.raw = raw }

    /// `!`, `!R`, `!RW`: the provisioned value overwrites a local edit.
    public var overridesLocalEdit: Bool { raw.contains("!") }
    /// `R` without `W`: local edits are refused. Absent, empty, `RW`: editable.
    public var refusesLocalEdit: Bool { raw.contains("R") && !raw.contains("W") }
    public var description: String { raw }
}

/// One effective parameter: its value, where it came from, and the attributes it was provisioned with.
public struct Parameter: Hashable, Sendable {
    /// Flat name; per-line parameters carry their line, e.g. `SIP_AUTHID_1` (spec §2).
    public var name: String
    public var value: String
    public var source: ParameterSource
    /// `perm` attribute as provisioned (empty when absent or local).
    public var perm: String
    /// `access` attribute as provisioned (empty when absent).
    public var access: String

    public init(name: String, value: String, source: ParameterSource, perm: String = "", access: String = "") {
        self.name = name
        self.value = value
        self.source = source
        self.perm = perm
        self.access = access
    }
}

/// The last good copy of one downloaded file, kept in flash for fallback (spec §6).
public struct SavedFile: Hashable, Sendable {
    public var kind: FileKind
    /// The URL it was downloaded from, macros expanded.
    public var url: String
    /// The file as applied (decrypted), kept as it is or compactly (`SavedBody`).
    public var savedBody: SavedBody
    public var savedAt: PhoneTime

    /// The file as applied, byte for byte.
    public var body: [UInt8] {
        get { savedBody.bytes }
        set { savedBody = SavedBody(newValue) }
    }

    public init(kind: FileKind, url: String, body: [UInt8], savedAt: PhoneTime) {
        self.init(kind: kind, url: url, savedBody: SavedBody(body), savedAt: savedAt)
    }

    public init(kind: FileKind, url: String, savedBody: SavedBody, savedAt: PhoneTime) {
        self.kind = kind
        self.url = url
        self.savedBody = savedBody
        self.savedAt = savedAt
    }
}

/// A value set by hand (web UI, phone UI, `vphone config set`).
public struct LocalEdit: Hashable, Sendable {
    public var name: String
    public var value: String
    public var editedAt: PhoneTime

    public init(name: String, value: String, editedAt: PhoneTime) {
        self.name = name
        self.value = value
        self.editedAt = editedAt
    }
}

/// What happened to one file in the last provisioning cycle.
public enum FileOutcome: String, Hashable, Sendable, Codable {
    /// Downloaded, valid, applied.
    case downloaded
    /// Failed; the last good saved copy stands in (spec §6).
    case fellBack = "fell_back"
    /// Failed, and no saved copy exists.
    case failed
    /// Not listed in `<CfgFiles>` (empty path): not used.
    case skipped
}

public struct FileStatus: Hashable, Sendable {
    public var kind: FileKind
    public var url: String
    public var outcome: FileOutcome
    /// Why it failed, or empty.
    public var reason: String
    public var at: PhoneTime

    public init(kind: FileKind, url: String, outcome: FileOutcome, reason: String, at: PhoneTime) {
        self.kind = kind
        self.url = url
        self.outcome = outcome
        self.reason = reason
        self.at = at
    }
}

/// The phone's timers (spec §7).
public enum TimerKind: String, CaseIterable, Hashable, Sendable, Codable {
    /// `CFG_CYCLIC`/`CFG_CYCLIC_INTVL`.
    case cyclic
    /// `CFG_RTRY_INTVL` after a failure.
    case retry
    /// `CFG_RESYNC_TIME`, daily.
    case resync

    /// By case, not by raw value (as `FileKind`).
    public func hash(into hasher: inout Hasher) { hasher.combine(caseNumber) }
    public static func == (a: TimerKind, b: TimerKind) -> Bool { a.caseNumber == b.caseNumber }
    private var caseNumber: UInt8 {
        switch self {
        case .cyclic: 0
        case .retry: 1
        case .resync: 2
        }
    }
}

// MARK: - Event log

/// One entry of the flash event log: every transition of the machine, with its time and reason.
public struct LogEntry: Hashable, Sendable {
    public enum Level: String, Hashable, Sendable, Codable { case debug, info, warning, error }

    public var at: PhoneTime
    /// Which power-on this belongs to (1 for the first boot of a flash).
    public var boot: Int
    public var level: Level
    /// A short machine-readable kind: `state`, `discover`, `fetch`, `fetch-failed`, `invalid-file`, `fallback`,
    /// `apply`, `timer`, `local-edit`, `override`, `factory-reset`, ...
    public var kind: String
    /// One human sentence.
    public var message: String
    /// Structured details (`file`, `url`, `status`, `reason`, `state`, ...). Never a secret.
    public var fields: [String: String]

    public init(
        at: PhoneTime,
        boot: Int,
        level: Level = .info,
        kind: String,
        message: String,
        fields: [String: String] = [:]
    ) {
        self.at = at
        self.boot = boot
        self.level = level
        self.kind = kind
        self.message = message
        self.fields = fields
    }
}

// MARK: - Flash contents

/// Everything a phone keeps in flash, as loaded at power-on (ARCHITECTURE rule 5).
public struct FlashSnapshot: Hashable, Sendable {
    public var identity: Identity
    /// How many times this flash has been powered on before, 0...`maxBootCount`.
    public var bootCount: Int
    /// The most boots a flash records (68 years of a boot a second); a larger count is a damaged flash, and a boot
    /// at this count stays at it rather than overflow.
    public static let maxBootCount = Int(Int32.max)
    public var savedFiles: [FileKind: SavedFile]
    /// The effective configuration last applied (the "saved configuration"), every non-factory value.
    public var parameters: ParameterTable
    public var localEdits: [String: LocalEdit]
    public var timers: [TimerKind: PhoneTime]
    public var fileStatus: [FileKind: FileStatus]
    /// The key encrypted files are decrypted with (spec §5), or nil.
    public var fileKey: FileKey?
    /// Root certificates downloaded from `<Certs>`, by slot (1...3).
    public var rootCertificates: [Int: RootCertificate]

    public init(
        identity: Identity,
        bootCount: Int = 0,
        savedFiles: [FileKind: SavedFile] = [:],
        parameters: ParameterTable = [:],
        localEdits: [String: LocalEdit] = [:],
        timers: [TimerKind: PhoneTime] = [:],
        fileStatus: [FileKind: FileStatus] = [:],
        fileKey: FileKey? = nil,
        rootCertificates: [Int: RootCertificate] = [:]
    ) {
        self.identity = identity
        self.bootCount = bootCount
        self.savedFiles = savedFiles
        self.parameters = parameters
        self.localEdits = localEdits
        self.timers = timers
        self.fileStatus = fileStatus
        self.fileKey = fileKey
        self.rootCertificates = rootCertificates
    }
}

/// The file encryption key (spec §5): installed by a plain standard file carrying `CFG_FILE_KEY`, kept until a new
/// plain standard file replaces it, cleared by a factory reset. A secret: never logged, masked in every listing.
public struct FileKey: Hashable, Sendable {
    /// The passphrase given to `openssl enc -pass pass:KEY`.
    public var key: String
    public var installedAt: PhoneTime
    /// The URL of the plain standard file that delivered it (credentials redacted).
    public var sourceURL: String

    public init(key: String, installedAt: PhoneTime, sourceURL: String) {
        self.key = key
        self.installedAt = installedAt
        self.sourceURL = sourceURL
    }
}

/// A root certificate from `<Certs>` (`CFG_ROOT_CERTIFICATE_PATHn`), trusted for HTTPS besides the system store.
public struct RootCertificate: Hashable, Sendable {
    /// 1...3: which `CFG_ROOT_CERTIFICATE_PATHn` named it.
    public var slot: Int
    public var url: String
    /// The certificate(s), PEM.
    public var pem: [UInt8]
    public var savedAt: PhoneTime

    public init(slot: Int, url: String, pem: [UInt8], savedAt: PhoneTime) {
        self.slot = slot
        self.url = url
        self.pem = pem
        self.savedAt = savedAt
    }
}

/// A change to the stored file key.
public enum KeyChange: Hashable, Sendable {
    case install(FileKey)
    case clear
}

/// A set of changes to flash, applied as one transaction: all of it or none of it (spec §6).
public struct FlashChanges: Hashable, Sendable {
    /// New boot count, when a power-on happened.
    public var bootCount: Int?
    /// Saved copies to insert or replace.
    public var savedFiles: [SavedFile] = []
    /// When set, the whole effective parameter table is replaced by this one.
    public var parameters: ParameterTable?
    /// Local edits to insert or replace.
    public var setLocalEdits: [LocalEdit] = []
    /// Local edits to delete, by name.
    public var removeLocalEdits: [String] = []
    /// Timers to arm (insert or replace).
    public var armTimers: [TimerKind: PhoneTime] = [:]
    /// Timers to disarm.
    public var cancelTimers: [TimerKind] = []
    /// Per-file outcomes to insert or replace.
    public var fileStatus: [FileStatus] = []
    /// Event log entries to append.
    public var events: [LogEntry] = []
    /// Install or clear the file key.
    public var fileKey: KeyChange?
    /// Root certificates to insert or replace (by slot).
    public var rootCertificates: [RootCertificate] = []
    /// Root certificate slots to clear.
    public var removeRootCertificates: [Int] = []

    public init() {}

    public var isEmpty: Bool { self == FlashChanges() }

    /// Appends `other` after `self`: later writes win.
    public mutating func merge(_ other: FlashChanges) {
        if let b = other.bootCount { bootCount = b }
        savedFiles += other.savedFiles
        if let p = other.parameters { parameters = p }
        setLocalEdits.removeAll { e in other.removeLocalEdits.contains(e.name) }
        removeLocalEdits.removeAll { n in other.setLocalEdits.contains { $0.name == n } }
        setLocalEdits += other.setLocalEdits
        removeLocalEdits += other.removeLocalEdits
        for t in other.cancelTimers { armTimers[t] = nil }
        cancelTimers.removeAll { other.armTimers[$0] != nil }
        armTimers.merge(other.armTimers) { _, new in new }
        cancelTimers += other.cancelTimers
        fileStatus += other.fileStatus
        events += other.events
        if let k = other.fileKey { fileKey = k }
        rootCertificates.removeAll { c in other.removeRootCertificates.contains(c.slot) }
        removeRootCertificates.removeAll { n in other.rootCertificates.contains { $0.slot == n } }
        rootCertificates += other.rootCertificates
        removeRootCertificates += other.removeRootCertificates
    }
}

extension FlashSnapshot {
    /// The snapshot after `changes`, exactly as the flash store applies them (the machine keeps its view in step).
    public func applying(_ changes: FlashChanges) -> FlashSnapshot {
        var s = self
        s.apply(changes)
        return s
    }

    /// `applying(changes)` in place: a copy of the snapshot is a retain and a release of each of its parts, and a
    /// dictionary it changes is then copied too (the machine applies every step's changes).
    public mutating func apply(_ changes: FlashChanges) {
        if let b = changes.bootCount { bootCount = b }
        for f in changes.savedFiles { savedFiles[f.kind] = f }
        if let p = changes.parameters { parameters = p }
        for e in changes.setLocalEdits { localEdits[e.name] = e }
        for n in changes.removeLocalEdits { localEdits[n] = nil }
        for t in changes.cancelTimers { timers[t] = nil }
        for (k, t) in changes.armTimers { timers[k] = t }
        for st in changes.fileStatus { fileStatus[st.kind] = st }
        switch changes.fileKey {
        case .install(let k): fileKey = k
        case .clear: fileKey = nil
        case nil: break
        }
        for c in changes.rootCertificates { rootCertificates[c.slot] = c }
        for n in changes.removeRootCertificates { rootCertificates[n] = nil }
    }
}
