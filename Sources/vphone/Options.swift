import ArgumentParser
import Crypto
import Flash
import Foundation
import Logging
import PhoneCore
import PhoneRuntime

/// Exit codes shared by every command (documented in the README and `--help`).
enum Exit {
    static let usage = ExitCode(64)
    static let data = ExitCode(65)
}

extension MAC: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }

    /// Refuses, as a bad command line (exit 64), a MAC no phone can have (`notAPhoneMAC`) given with `flag`.
    func requirePhoneMAC(_ flag: String) throws {
        guard let problem = notAPhoneMAC else { return }
        // All zeros is unicast too: what it lacks is a vendor.
        let fix = value == 0 ? "give the phone's own MAC" : "a phone's MAC is unicast"
        throw ValidationError("\(flag) \(upper) \(problem): \(fix), e.g. 0080F0C571EB")
    }
}

enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    case human, json
}

struct LoggingOptions: ParsableArguments {
    @Option(help: "Log format: human (default) or json (one object per line, for machines).")
    var logFormat: LogFormat = .human

    @Option(help: "Least severe level logged: debug, info, notice, warning, error, critical.")
    var logLevel: LevelArgument = LevelArgument(.info)

    func bootstrap(label: String) -> Logger {
        let format = logFormat
        let level = logLevel.level
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler(label: label, format: format)
            h.logLevel = level
            return h
        }
        return Logger(label: label)
    }
}

struct LevelArgument: ExpressibleByArgument {
    var level: Logger.Level
    init(_ level: Logger.Level) { self.level = level }
    init?(argument: String) {
        guard let l = Logger.Level(rawValue: argument.lowercased()) else { return nil }
        level = l
    }
    var defaultValueDescription: String { level.rawValue }
}

struct ProfileOption: ParsableArguments {
    @Option(help: "Device profile (JSON) to use instead of the bundled Profiles/KX-UTG300.json.")
    var profile: String?

    func load() throws -> DeviceProfile {
        do {
            return try ProfileLoader.load(path: profile)
        } catch {
            fail("\(error)")
            throw Exit.data
        }
    }
}

/// `--flash PATH` / `--mac MAC`: which phone's flash a command works on.
struct FlashLocation: ParsableArguments {
    @Option(help: "The phone's flash file (default: Storage/<MAC>.flash).")
    var flash: String?

    @Option(
        help:
            "The phone's MAC address, 12 hex digits, unicast (e.g. 0080F0C571EB). Optional when --flash exists."
    )
    var mac: MAC?

    /// Run by every command that has these options, before its own `validate()`.
    func validate() throws {
        if flash?.isEmpty == true {
            throw ValidationError(
                "--flash \"\": an empty path; give the flash file's path (or --mac MAC for Storage/<MAC>.flash)"
            )
        }
    }

    /// Commands call this from their `validate()` when no image is given otherwise (`events IMAGE`): one of the two
    /// must be given, and a MAC that names the file (no --flash) must be one a phone can have: no phone's flash is
    /// Storage/<multicast MAC>.flash. With --flash the image's own MAC decides (`macMismatch`). Not in `validate()`,
    /// which runs before the command knows of an IMAGE argument.
    func requireGiven() throws {
        if flash == nil && mac == nil {
            throw ValidationError("give --mac MAC (flash at Storage/<MAC>.flash) or --flash PATH")
        }
        if flash == nil { try mac?.requirePhoneMAC("--mac") }
    }

    var path: String { flash ?? "Storage/\(mac?.upper ?? "").flash" }

    /// Opens an existing flash; a missing or unusable one ends the command with exit 65.
    func open(readOnly: Bool = false) throws -> FlashStore {
        do {
            let store = try FlashStore.open(at: path, readOnly: readOnly)
            try checkMAC(store)
            return store
        } catch let error as FlashError {
            fail(error.kind == .notFound ? "\(error) (boot the phone first: vphone boot --mac MAC)" : "\(error)")
            throw Exit.data
        }
    }

    /// Opens the flash, creating a factory-fresh one for `--mac` when it does not exist yet.
    func openOrCreate(profile: DeviceProfile, now: PhoneTime) throws -> FlashStore {
        if FileManager.default.fileExists(atPath: path) { return try open() }
        guard let mac else {
            fail("flash \(path) does not exist yet: give --mac MAC to create it")
            throw Exit.usage
        }
        do {
            return try FlashStore.create(
                at: path,
                identity: Identity(mac: mac, profile: profile, createdAt: now)
            )
        } catch {
            fail("\(error)")
            throw Exit.data
        }
    }

    private func checkMAC(_ store: FlashStore) throws {
        guard mac != nil else { return }
        let snapshot: FlashSnapshot
        do { snapshot = try store.load() } catch {
            fail("\(error)")
            throw Exit.data
        }
        if let mismatch = macMismatch(snapshot) {
            fail(mismatch)
            throw Exit.usage
        }
    }

    /// The refusal when the image belongs to another phone than `--mac` says (exit 64), or nil.
    func macMismatch(_ snapshot: FlashSnapshot) -> String? {
        guard let mac, snapshot.identity.mac != mac else { return nil }
        return "flash \(path) belongs to \(snapshot.identity.mac), not \(mac): drop --mac or pick the right --flash"
    }
}

/// Loads a flash snapshot or ends the command with exit 65.
func loadSnapshot(_ store: FlashStore) throws -> FlashSnapshot {
    do {
        return try store.load()
    } catch {
        fail("\(error)")
        throw Exit.data
    }
}

/// Refuses a `--time-scale` the phones' clocks cannot run at: not positive, or past 1e9 (a phone's clock in
/// milliseconds times the scale must stay an Int64).
func checkTimeScale(_ timeScale: Double) throws {
    guard timeScale > 0, timeScale.isFinite, timeScale <= 1e9 else {
        throw ValidationError("--time-scale must be a positive number up to 1e9 (e.g. 60 or 10080), got \(timeScale)")
    }
}

/// Refuses a `--ca-file` that every HTTPS transfer would then fail on: missing, a directory, too big, or not PEM
/// certificates libcrypto can read (each is parsed, as the phone parses a downloaded root certificate).
func checkCAFile(_ path: String) throws {
    var info = stat()
    guard stat(path, &info) == 0, access(path, R_OK) == 0 else {
        throw ValidationError("--ca-file \(path): no such readable file (expected a PEM file of CA certificates)")
    }
    guard info.st_mode & S_IFMT == S_IFREG else {
        throw ValidationError("--ca-file \(path) is not a file: give a PEM file of CA certificates")
    }
    guard info.st_size <= 4 << 20 else {
        throw ValidationError(
            "--ca-file \(path) is \(info.st_size) bytes: a PEM file of CA certificates is far smaller"
        )
    }
    let bytes = [UInt8](FileManager.default.contents(atPath: path) ?? Data())
    do { _ = try CertificatePEM.count(bytes) } catch {
        throw ValidationError("--ca-file \(path): \(error.description)")
    }
}

/// Writes `vphone: message` to standard error, naming the `VPHONE_*` variable behind a flag (or path) it is about.
func fail(_ message: String) {
    note(namingEnvironmentSources(message, launch.sources))
}

/// Writes `vphone: message` to standard error, as it is (a remark, not an error).
func note(_ message: String) {
    FileHandle.standardError.write(Data("vphone: \(message)\n".utf8))
}

/// The wall clock as phone time (commands that do not run a phone).
func wallClock() -> PhoneTime {
    PhoneTime(millisecondsSinceEpoch: Int64(Date().timeIntervalSince1970 * 1000))
}

/// `90s`, `10m`, `2h`, `7d`, `1w` (or a bare number of seconds) as milliseconds; the range is checked by the
/// commands' `validate()` (`problem`), which can say why.
struct DurationArgument: ExpressibleByArgument {
    var milliseconds: Int64
    var text: String
    /// A hundred years: as far as a phone's clock is run, and far from overflowing its time.
    static let maxMilliseconds: Int64 = 36_525 * 86_400_000
    init?(argument: String) {
        let units: [Character: Int64] = ["s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000]
        var text = argument
        var unit: Int64 = 1000
        if let last = text.last, let u = units[last] {
            unit = u
            text.removeLast()
        }
        guard let v = Double(text), v.isFinite else { return nil }
        let ms = v * Double(unit)
        // Out of range is kept as a sentinel for `problem` (a Double past Int64 cannot be converted).
        milliseconds = ms > 0 && ms <= Double(Self.maxMilliseconds) ? Int64(ms) : (ms > 0 ? Int64.max : 0)
        self.text = argument
    }
    var problem: String? {
        if milliseconds <= 0 { return "must be more than 0 (e.g. 90s, 10m, 2h, 7d)" }
        if milliseconds > Self.maxMilliseconds { return "must be at most 100 years (36525d)" }
        return nil
    }
    static var defaultValueDescription: String { "a duration like 90s, 10m, 2h, 7d" }
}
