import Foundation
import Logging
import PhoneCore
import Transport

/// A recording of every exchange between one phone and its provisioning server, so a field failure can be replayed
/// offline, deterministically, on any machine.
///
/// A recording is a directory (mode 0700, files 0600):
/// - `recording.json`: `{"format": "vphone-recording/1", "mac": ..., "phone_start_ms": ..., "exchanges": [...]}`;
///   each exchange has `seq`, `url` (credentials removed), `status`, `content_type`, `body` (a file name) and
///   `bytes`, or `failure` {`kind`, `status`, `message`}, and `timings_us`.
/// - `body-NNNN.bin`: the bodies, byte for byte as the server sent them.
/// - `flash.flash`: the phone's flash image as it was before the recorded boot.
public enum Recording {
    public static let format = "vphone-recording/1"

    public struct Exchange: Codable, Sendable, Equatable {
        public var seq: Int
        public var url: String
        public var status: Int?
        public var contentType: String?
        public var body: String?
        public var bytes: Int?
        public var failure: Failure?
        public var timingsUs: [String: Int64]

        public struct Failure: Codable, Sendable, Equatable {
            public var kind: String
            public var status: Int?
            public var message: String
        }

        enum CodingKeys: String, CodingKey {
            case seq, url, status, body, bytes, failure
            case contentType = "content_type"
            case timingsUs = "timings_us"
        }
    }

    public struct Manifest: Codable, Sendable {
        public var format: String
        public var mac: String
        public var phoneStartMs: Int64
        /// How the recorded phone was told where its server is (`prov_url`, `option66`, ...): a replay uses the same.
        public var discovery: [String: String]?
        public var exchanges: [Exchange]

        enum CodingKeys: String, CodingKey {
            case format, mac, exchanges, discovery
            case phoneStartMs = "phone_start_ms"
        }

        /// The recorded discovery options.
        public var discoveryOptions: DiscoveryOptions {
            let d = discovery ?? [:]
            return DiscoveryOptions(
                provisioningURL: d["prov_url"],
                sipPnPURL: d["sip_pnp_url"],
                option160: d["option160"],
                option159: d["option159"],
                option66: d["option66"]
            )
        }
    }

    /// Why a recording cannot be used.
    public struct RecordingError: Error, CustomStringConvertible, Sendable {
        public var message: String
        /// Why the system refused (`strerror`), when it did; also at the end of `message`.
        public var reason: String

        public init(message: String, reason: String? = nil) {
            self.message = message + (reason.map { " (\($0))" } ?? "")
            self.reason = reason ?? message
        }

        public var description: String { message }
    }

    /// Reads `DIR/recording.json`.
    public static func load(_ dir: String) throws(RecordingError) -> Manifest {
        let path = dir + "/recording.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RecordingError(
                message: "recording \(dir): no recording.json (make one with vphone boot --record DIR)"
            )
        }
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: data)
        } catch {
            throw RecordingError(message: "recording \(path) is not a vphone recording: \(error)")
        }
        guard manifest.format == format else {
            throw RecordingError(
                message: "recording \(path) has format \"\(manifest.format)\"; this vphone reads \"\(format)\""
            )
        }
        // Every body is judged before the replay starts: a bad name is a bad recording, not a failed download.
        for exchange in manifest.exchanges {
            _ = try bodyPath(of: exchange, in: dir)
        }
        return manifest
    }

    /// The real path of the body of `exchange`, or nil when the recording has no such file.
    /// - Throws: `RecordingError` naming `recording.json`, the exchange and the body when the body's name is absolute
    ///   or leads outside `dir`.
    public static func bodyPath(of exchange: Exchange, in dir: String) throws(RecordingError) -> String? {
        guard let name = exchange.body else { return nil }
        return try file(
            name,
            in: dir,
            what: "recording \(dir)/recording.json: exchange \(exchange.seq) (\(exchange.url)): body"
        )
    }

    /// The real path of the recorded flash image (`flash.flash`), or nil when the recording has none (a recording of
    /// a phone's very first boot).
    /// - Throws: `RecordingError` when `flash.flash` is a symbolic link out of `dir`.
    public static func flashPath(in dir: String) throws(RecordingError) -> String? {
        try file("flash.flash", in: dir, what: "recording \(dir): flash image")
    }

    /// The real path of `name`, a file the recording `dir` holds, or nil when there is none.
    ///
    /// Recordings are shared: one naming `../../../etc/passwd`, `/etc/shadow` or a symbolic link out of its
    /// directory would copy that file into the phone's logs and flash. The name is resolved (`..` and symbolic links)
    /// and compared with the real path of `dir`, as `vphone serve` does with request paths; the caller reads the
    /// resolved path, so a link swapped in afterwards is not followed.
    /// - Throws: `RecordingError` (`what`, the name, why) when `name` is absolute or resolves outside `dir`.
    static func file(_ name: String, in dir: String, what: String) throws(RecordingError) -> String? {
        func refuse(_ why: String) -> RecordingError {
            RecordingError(
                message: "\(what) \"\(name)\" \(why); a recording names only files inside its own directory "
                    + "(body-0001.bin): not read"
            )
        }
        guard !name.hasPrefix("/") else { throw refuse("is an absolute path") }
        guard let root = realPath(dir) else {
            throw RecordingError(message: "recording \(dir): cannot be opened (\(String(cString: strerror(errno))))")
        }
        let inside = root == "/" ? root : root + "/"
        if let real = realPath(inside + name) {
            guard real.hasPrefix(inside) else { throw refuse("resolves to \(real), outside \(root)") }
            return real
        }
        // No such file: judge the name alone, each `..` against the directories before it.
        var depth = 0
        for part in name.split(separator: "/") where part != "." {
            depth += part == ".." ? -1 : 1
            if depth < 0 { throw refuse("leads outside \(root)") }
        }
        return nil
    }

    /// Makes `dir` ready for a new recording, before anything else is written: creates it (mode 0700, with any
    /// missing parents) or takes an existing empty directory (and makes it 0700). A directory that holds anything
    /// is refused: a recording is never overwritten, nor mixed with other files.
    ///
    /// ```swift
    /// try Recording.prepareDirectory("rec/")   // before the flash is created, so a bad path costs nothing
    /// ```
    /// - Throws: `RecordingError` naming `dir`, the reason (`strerror`) and what to do.
    public static func prepareDirectory(_ dir: String) throws(RecordingError) {
        func refuse(_ why: String) -> RecordingError { RecordingError(message: "\(dir): \(why)") }
        func reason(_ code: Int32) -> String { String(cString: strerror(code)) }
        guard !dir.isEmpty else {
            throw RecordingError(message: "\"\": an empty path; give a new directory for the recording")
        }
        var info = stat()
        if stat(dir, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw refuse("exists and is not a directory; give a new directory for the recording")
            }
            guard let handle = opendir(dir) else {
                throw refuse("cannot be read (\(reason(errno))); give a new directory for the recording")
            }
            closedir(handle)
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            guard entries.isEmpty else {
                let shown = entries.sorted().prefix(3).joined(separator: ", ") + (entries.count > 3 ? ", ..." : "")
                throw refuse(
                    "already holds \(entries.count) file(s) (\(shown)); give a new or empty directory: a recording "
                        + "is never overwritten or mixed with other files"
                )
            }
        } else {
            let code = errno
            guard code == ENOENT else {
                let hint = code == ENOTDIR ? ": a part of the path is a file" : ""
                throw refuse("cannot be used (\(reason(code))\(hint)); give a new directory for the recording")
            }
            // mkdir -p, the parents as a shell makes them and the recording itself private from the start.
            let parts = dir.split(separator: "/", omittingEmptySubsequences: false)
            let last = parts.lastIndex { !$0.isEmpty && $0 != "." } ?? 0
            var prefix = ""
            for (index, part) in parts.enumerated() where index <= last {
                prefix += (index == 0 ? "" : "/") + part
                guard !part.isEmpty, part != ".", part != ".." else { continue }
                if mkdir(prefix, index == last ? 0o700 : 0o755) == 0 { continue }
                let code = errno
                guard index < last, code == EEXIST, stat(prefix, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
                    throw refuse("cannot create \(prefix) (\(reason(code))); give a directory you can create")
                }
            }
        }
        guard access(dir, W_OK | X_OK) == 0 else {
            throw refuse("cannot create files in it (\(reason(errno))); give a directory you can write")
        }
        guard chmod(dir, 0o700) == 0 else {
            throw refuse("cannot be made private, mode 0700 (\(reason(errno)))")
        }
    }

    /// `realpath(3)`: `path` with `.`, `..` and symbolic links resolved, or nil (errno set) when it does not exist.
    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// Passes every fetch to another transport and writes the exchange into a recording directory.
///
/// A file that cannot be written (a full disk) does not stop the phone: the first failure is logged as an error,
/// naming the file and the reason, and `incomplete` says what the recording lacks when the run is over.
public final class RecordingTransport: Transport, @unchecked Sendable {
    private let inner: any Transport
    private let dir: String
    private let logger: Logger?
    private let lock = NSLock()
    private var manifest: Recording.Manifest
    /// The bodies that could not be written ("body-0003.bin (No space left on device)"), in order.
    private var lostBodies: [String] = []
    /// Why the last write of `recording.json` failed; nil once one succeeds again (it holds every exchange).
    private var manifestProblem: String?
    private var reported = false

    /// Copies the flash image into `dir` first.
    /// - Parameters:
    ///   - dir: a directory made ready with `Recording.prepareDirectory` (new or empty, mode 0700).
    ///   - logger: where the first file that cannot be written is reported, as it happens.
    /// - Throws: `RecordingError` naming the file that could not be written and why.
    public init(
        wrapping inner: any Transport,
        dir: String,
        flashPath: String,
        mac: MAC,
        phoneStart: PhoneTime,
        discovery: DiscoveryOptions,
        logger: Logger? = nil
    ) throws(Recording.RecordingError) {
        self.inner = inner
        self.dir = dir
        self.logger = logger
        let copy = dir + "/flash.flash"
        if FileManager.default.fileExists(atPath: flashPath) {
            do {
                try FileManager.default.copyItem(atPath: flashPath, toPath: copy)
                try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: copy)
            } catch {
                throw Recording.RecordingError(
                    message:
                        "recording \(dir): cannot copy the flash \(flashPath) into it: \(error.localizedDescription)"
                )
            }
        }
        manifest = Recording.Manifest(
            format: Recording.format,
            mac: mac.upper,
            phoneStartMs: phoneStart.millisecondsSinceEpoch,
            discovery: [
                "prov_url": discovery.provisioningURL.map(redactURL), "sip_pnp_url": discovery.sipPnPURL.map(redactURL),
                "option160": discovery.option160.map(redactURL), "option159": discovery.option159.map(redactURL),
                "option66": discovery.option66.map(redactURL),
            ].compactMapValues { $0 },
            exchanges: []
        )
        try write()
    }

    public func fetch(
        _ request: FetchRequest,
        completion: @escaping @Sendable (Result<FetchResponse, FetchFailure>) -> Void
    ) {
        inner.fetch(request) { [self] result in
            record(request, result)
            completion(result)
        }
    }

    private func record(_ request: FetchRequest, _ result: Result<FetchResponse, FetchFailure>) {
        lock.lock()
        defer { lock.unlock() }
        let seq = manifest.exchanges.count + 1
        var exchange = Recording.Exchange(seq: seq, url: redactURL(request.url), timingsUs: [:])
        let timings: FetchTimings
        switch result {
        case .success(let r):
            let name = String(format: "body-%04d.bin", seq)
            exchange.status = r.status
            exchange.contentType = r.contentType
            exchange.bytes = r.body.count
            if let problem = Self.writeNewFile(dir + "/" + name, r.body, replacing: false) {
                // Named in the manifest only when written: a replay then says the body is missing.
                lost("\(name) (\(problem))")
                lostBodies.append("\(name) (\(problem))")
            } else {
                exchange.body = name
            }
            timings = r.timings
        case .failure(let f):
            exchange.failure = .init(kind: f.kind.rawValue, status: f.httpStatus, message: f.message)
            timings = f.timings
        }
        exchange.timingsUs = [
            "dns": timings.dnsUs, "connect": timings.connectUs, "tls": timings.tlsUs,
            "first_byte": timings.firstByteUs, "total": timings.totalUs,
        ]
        manifest.exchanges.append(exchange)
        do {
            try write()
            manifestProblem = nil
        } catch {
            lost("recording.json (\(error.reason))")
            manifestProblem = error.reason
        }
    }

    /// What the recording lacks because a file could not be written, with the fix; nil when it is complete.
    /// Read it when the phone has stopped.
    public var incomplete: String? {
        lock.lock()
        defer { lock.unlock() }
        var missing: [String] = []
        if let first = lostBodies.first {
            missing.append(
                lostBodies.count == 1
                    ? "the body of 1 exchange was not saved, \(first)"
                    : "the bodies of \(lostBodies.count) exchanges were not saved (the first \(first))"
            )
        }
        if let manifestProblem {
            missing.append("the last exchanges are not in recording.json (\(manifestProblem))")
        }
        guard !missing.isEmpty else { return nil }
        return "recording \(dir) is incomplete: \(missing.joined(separator: "; ")); a replay of it lacks them: "
            + "make room on its disk (or record into another directory) and record again"
    }

    /// Reports the first file that could not be written, as it happens; later ones are summed up in `incomplete`.
    private func lost(_ file: String) {
        guard !reported else { return }
        reported = true
        logger?.error(
            "recording \(dir): cannot write \(file); the recording is incomplete (the phone keeps running)"
        )
    }

    private func write() throws(Recording.RecordingError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(manifest) else {
            throw Recording.RecordingError(message: "recording \(dir): cannot encode recording.json")
        }
        let path = dir + "/recording.json"
        let tmp = path + ".tmp"
        if let problem = Self.writeNewFile(tmp, [UInt8](data), replacing: true) {
            throw Recording.RecordingError(message: "recording \(dir): cannot write recording.json", reason: problem)
        }
        guard Foundation.rename(tmp, path) == 0 else {
            let problem = String(cString: strerror(errno))
            unlink(tmp)
            throw Recording.RecordingError(message: "recording \(dir): cannot write recording.json", reason: problem)
        }
    }

    /// Writes `bytes` to `path` (mode 0600) and returns nil, or the reason it could not (`strerror`: "No space left
    /// on device") with nothing half-written left behind. An existing file is replaced only when `replacing`.
    private static func writeNewFile(_ path: String, _ bytes: [UInt8], replacing: Bool) -> String? {
        func reason() -> String { String(cString: strerror(errno)) }
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (replacing ? O_TRUNC : O_EXCL), 0o600)
        guard fd >= 0 else { return reason() }
        var problem: String?
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in
                Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                problem = reason()
                break
            }
            offset += written
        }
        if close(fd) != 0, problem == nil { problem = reason() }
        if problem != nil { unlink(path) }
        return problem
    }
}

/// Serves fetches from a recording, with no network: each URL gets the recorded answers for it, in order.
public final class ReplayTransport: Transport, @unchecked Sendable {
    private let dir: String
    private let lock = NSLock()
    private var remaining: [String: [Recording.Exchange]]
    private let queue = DispatchQueue(label: "vphone-replay")

    public init(dir: String, manifest: Recording.Manifest) {
        self.dir = dir
        var byURL: [String: [Recording.Exchange]] = [:]
        for e in manifest.exchanges { byURL[e.url, default: []].append(e) }
        remaining = byURL
    }

    public func fetch(
        _ request: FetchRequest,
        completion: @escaping @Sendable (Result<FetchResponse, FetchFailure>) -> Void
    ) {
        let url = redactURL(request.url)
        lock.lock()
        let exchange = remaining[url]?.first
        if exchange != nil { remaining[url]?.removeFirst() }
        lock.unlock()
        let result = answer(exchange, url: url)
        // Asynchronously, like a real transport: never inside the caller's step.
        queue.async { completion(result) }
    }

    private func answer(_ exchange: Recording.Exchange?, url: String) -> Result<FetchResponse, FetchFailure> {
        guard let exchange else {
            return .failure(
                FetchFailure(
                    kind: .other,
                    message: "\(url) is not in the recording (the recorded phone did not ask for it, or not this often)"
                )
            )
        }
        let t = exchange.timingsUs
        let timings = FetchTimings(
            dnsUs: t["dns"] ?? 0,
            connectUs: t["connect"] ?? 0,
            tlsUs: t["tls"] ?? 0,
            firstByteUs: t["first_byte"] ?? 0,
            totalUs: t["total"] ?? 0
        )
        if let f = exchange.failure {
            let kind = FetchFailure.Kind(rawValue: f.kind) ?? .other
            return .failure(FetchFailure(kind: kind, httpStatus: f.status, message: f.message, timings: timings))
        }
        let path: String?
        do {
            path = try Recording.bodyPath(of: exchange, in: dir)
        } catch {
            return .failure(FetchFailure(kind: .other, message: error.message))
        }
        guard let path, let data = FileManager.default.contents(atPath: path) else {
            return .failure(
                FetchFailure(kind: .other, message: "recording \(dir): body of exchange \(exchange.seq) is missing")
            )
        }
        return .success(
            FetchResponse(
                status: exchange.status ?? 200,
                body: [UInt8](data),
                effectiveURL: url,
                contentType: exchange.contentType,
                timings: timings
            )
        )
    }
}
