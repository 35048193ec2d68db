import FlyingFox
import Foundation
import HTTPServing
import Logging
import Synchronization

/// One request as the server saw it and what it did: the access log.
public struct ServedRequest: Sendable, Hashable {
    public var method: String
    public var path: String
    public var userAgent: String
    /// The status line sent (0 when nothing was sent: a stall).
    public var status: Int
    /// Body bytes the server meant to send (a broken-off or endless body is cut short or never ends).
    public var bytes: Int
    /// The rule that applied, or nil when the file was served normally.
    public var rule: Rule?

    /// One access-log line: `GET /ConfigCom.cfg 200 512 "Panasonic_KX-UTG300/03.210 (0080f0c571eb)" rule=...`.
    public var line: String {
        var out = "\(method) \(path) \(status == 0 ? "-" : String(status)) \(bytes) \"\(userAgent)\""
        if let rule { out += " rule=\(rule)" }
        return out
    }
}

/// The provisioning server vphone carries: `vphone serve DIR` (a plain static server for a directory of
/// provisioning files, or the built-in example tree) and `vphone testserver DIR --rule ...` (the same server told to
/// misbehave on some paths, to see what a phone does then). Built on FlyingFox; GET and HEAD only.
///
/// ```swift
/// let server = try await ProvisioningServer.start(tree: .example, logger: logger)
/// // boot a phone with --prov-url server.url + "/KX-UTG300.cfg"
/// server.setRules([try Rule(parsing: "/ConfigCom.cfg=503")])
/// await server.stop()
/// ```
public final class ProvisioningServer: Sendable {
    private let listener: HTTPListener
    private let state: Shared

    /// `http://HOST:PORT`, without a trailing slash: the origin the phone's URLs name.
    public let origin: String

    private init(listener: HTTPListener, state: Shared, origin: String) {
        self.listener = listener
        self.state = state
        self.origin = origin
    }

    /// Starts serving `tree` and returns once the port accepts connections.
    ///
    /// - Parameters:
    ///   - rules: misbehaviours by path; the first rule whose pattern matches the request path applies.
    ///   - rulesFile: more rules, after `rules`, from a file (see `Rule.parseFile`) read again whenever it changes, so
    ///     that a server can start healthy and break later. A file that does not parse keeps the rules it had, and
    ///     `onProblem` says why.
    ///   - bind: the address to listen on (default 127.0.0.1: only this host).
    ///   - port: 0 picks a free port.
    ///   - onRequest: called after each request is answered (the access log).
    /// - Throws: `HTTPListenerError` naming the address (port in use, bad address).
    public static func start(
        tree: ServedTree,
        rules: [Rule] = [],
        rulesFile: String? = nil,
        bind: String = "127.0.0.1",
        port: Int = 0,
        logger: Logger,
        onRequest: (@Sendable (ServedRequest) -> Void)? = nil,
        onProblem: (@Sendable (String) -> Void)? = nil
    ) async throws(HTTPListenerError) -> ProvisioningServer {
        let state = Shared(rules: rules, rulesFile: rulesFile, onRequest: onRequest, onProblem: onProblem)
        state.reloadRulesFile()
        // A stalled request holds its connection for up to an hour; FlyingFox answers 500 only after this.
        let listener = try await HTTPListener.start(
            handler: MisbehavingHandler(tree: tree, state: state),
            bind: bind,
            port: port,
            timeout: 3700,
            name: "provisioning server",
            logger: logger
        )
        let origin = String(listener.url.dropLast())
        state.lock.withLock { $0.origin = origin }
        return ProvisioningServer(listener: listener, state: state, origin: origin)
    }

    /// Replaces the misbehaviour rules given at start (not those of the rules file); requests that arrive afterwards
    /// follow the new ones.
    public func setRules(_ rules: [Rule]) { state.lock.withLock { $0.rules = rules } }

    /// The rules in force: those given, then those of the rules file as last read.
    public var rules: [Rule] { state.lock.withLock { $0.rules + $0.fileRules } }

    /// Stops listening; requests still stalled or trickling are cut off.
    public func stop() async { await listener.stop(grace: 0.1) }
}

/// What the server and its handler share: the rules, the origin, the request callback.
private final class Shared: Sendable {
    struct State {
        var rules: [Rule]
        var fileRules: [Rule] = []
        /// Modification time and size of the rules file when it was last read.
        var fileStamp: [Int] = []
        var origin = ""
    }

    let lock: Mutex<State>
    let rulesFile: String?
    let onRequest: (@Sendable (ServedRequest) -> Void)?
    let onProblem: (@Sendable (String) -> Void)?

    init(
        rules: [Rule],
        rulesFile: String?,
        onRequest: (@Sendable (ServedRequest) -> Void)?,
        onProblem: (@Sendable (String) -> Void)?
    ) {
        lock = Mutex(State(rules: rules))
        self.rulesFile = rulesFile
        self.onRequest = onRequest
        self.onProblem = onProblem
    }

    /// Reads the rules file again when its modification time or size changed since the last read.
    func reloadRulesFile() {
        guard let rulesFile else { return }
        var info = stat()
        let stamp: [Int] =
            stat(rulesFile, &info) == 0
            ? [Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec), Int(info.st_size), Int(info.st_ino)] : []
        guard lock.withLock({ $0.fileStamp != stamp }) else { return }
        var rules: [Rule] = []
        var problem: String?
        if stamp.isEmpty {
            problem = "rules file \(rulesFile): cannot be read; serving without its rules"
        } else if let text = try? String(contentsOfFile: rulesFile, encoding: .utf8) {
            do {
                rules = try Rule.parseFile(text, name: rulesFile)
            } catch {
                problem = "\(error); keeping the rules it had"
                rules = lock.withLock { $0.fileRules }
            }
        } else {
            problem = "rules file \(rulesFile): not UTF-8 text; keeping the rules it had"
            rules = lock.withLock { $0.fileRules }
        }
        lock.withLock {
            $0.fileRules = rules
            $0.fileStamp = stamp
        }
        if let problem { onProblem?(problem) }
    }
}

/// FlyingFox handler: finds the file, applies the first matching rule.
private struct MisbehavingHandler: HTTPHandler {
    let tree: ServedTree
    let state: Shared

    func handleRequest(_ request: HTTPRequest) async throws -> HTTPResponse {
        state.reloadRulesFile()
        let (rules, origin) = state.lock.withLock { ($0.rules + $0.fileRules, $0.origin) }
        let rule = rules.first { $0.matches(request.path) }
        var record = ServedRequest(
            method: request.method.rawValue,
            path: request.path,
            userAgent: request.headers[HTTPHeader("User-Agent")] ?? "",
            status: 0,
            bytes: 0,
            rule: rule?.behaviour == Misbehaviour.none ? nil : rule
        )
        if case .stall(let seconds) = rule?.behaviour {
            // Logged when it starts (status "-"): a stalled request is what someone watching the log looks for.
            log(record)
            // Rules parsed from text are within range; one built in code is clamped rather than crash the server.
            let bounded = seconds > 0 ? min(seconds, Misbehaviour.longestStall) : 0
            try await Task.sleep(nanoseconds: UInt64(bounded * 1e9))
            throw StallOver()
        }
        let response = try await respond(to: request, behaviour: rule?.behaviour ?? .none, origin: origin, &record)
        log(record)
        return response
    }

    private func log(_ record: ServedRequest) { state.onRequest?(record) }

    private func respond(
        to request: HTTPRequest,
        behaviour: Misbehaviour,
        origin: String,
        _ record: inout ServedRequest
    ) async throws -> HTTPResponse {
        guard request.method == .GET || request.method == .HEAD else {
            return text(405, "only GET and HEAD are served\n", &record, headers: [HTTPHeader("Allow"): "GET, HEAD"])
        }
        switch behaviour {
        case .status(let code):
            return text(code, "\(code) (vphone testserver rule)\n", &record)
        case .redirectLoop:
            return redirect(to: origin + request.path, &record)
        case .redirectToFile:
            return redirect(to: "file:///etc/passwd", &record)
        case .authForever:
            var headers = HTTPHeaders()
            headers.addValue("Basic realm=\"vphone\"", for: HTTPHeader("WWW-Authenticate"))
            headers.addValue(
                "Digest realm=\"vphone\", qop=\"auth\", nonce=\"\(UUID().uuidString)\", algorithm=MD5",
                for: HTTPHeader("WWW-Authenticate")
            )
            return text(401, "authentication required (forever)\n", &record, headers: headers)
        case .garbage:
            return body(Self.garbage(seed: request.path), request, &record)
        case .endless:
            let line = Array("<PANASIPPhoneConfig><Device><X>endless</X></Device>\n".utf8)
            let forever = PacedBytes(
                bytes: Array(repeating: line, count: 64).flatMap { $0 },
                piece: 16_384,
                pauseNanoseconds: 0,
                endless: true
            )
            record.status = 200
            record.bytes = -1
            guard request.method == .GET else { return HTTPResponse(statusCode: .ok) }
            return HTTPResponse(statusCode: .ok, body: HTTPBodySequence(from: forever))
        default:
            break
        }
        var path = request.path
        if case .other(let other) = behaviour { path = other }
        if behaviour == .wrongMAC {
            guard let other = tree.otherMACPath(for: request.path) else {
                return text(404, "wrong-mac: the tree holds no file of another MAC shaped like this path\n", &record)
            }
            path = other
        }
        guard let file = tree.file(at: path, origin: origin) else { return text(404, "not found\n", &record) }
        switch behaviour {
        case .trickle(let rate):
            let paced = PacedBytes(bytes: file, piece: max(rate, 1), pauseNanoseconds: 1_000_000_000, endless: false)
            return stream(paced, announced: file.count, request, &record)
        case .closeMidBody:
            let half = PacedBytes(bytes: file, piece: 4096, pauseNanoseconds: 0, breakAfter: file.count / 2)
            record.bytes = file.count / 2
            return stream(half, announced: file.count, request, &record)
        case .overLength:
            var response = body(file, request, &record)
            response.headers[.contentLength] = String(file.count / 2)
            return response
        default:
            return body(file, request, &record)
        }
    }

    private func text(
        _ code: Int,
        _ message: String,
        _ record: inout ServedRequest,
        headers: HTTPHeaders = [:]
    ) -> HTTPResponse {
        record.status = code
        record.bytes = message.utf8.count
        var headers = headers
        headers[.contentType] = "text/plain"
        return HTTPResponse(
            statusCode: HTTPStatusCode(code, phrase: Self.phrase(code)),
            headers: headers,
            body: Data(message.utf8)
        )
    }

    private func redirect(to location: String, _ record: inout ServedRequest) -> HTTPResponse {
        record.status = 302
        let headers: HTTPHeaders = [.location: location]
        return HTTPResponse(statusCode: .found, headers: headers)
    }

    private func body(_ bytes: [UInt8], _ request: HTTPRequest, _ record: inout ServedRequest) -> HTTPResponse {
        record.status = 200
        record.bytes = bytes.count
        let headers: HTTPHeaders = [.contentType: "application/octet-stream"]
        guard request.method == .GET else {
            var head = headers
            head[.contentLength] = String(bytes.count)
            return HTTPResponse(statusCode: .ok, headers: head)
        }
        return HTTPResponse(statusCode: .ok, headers: headers, body: Data(bytes))
    }

    private func stream(
        _ paced: PacedBytes,
        announced: Int,
        _ request: HTTPRequest,
        _ record: inout ServedRequest
    ) -> HTTPResponse {
        record.status = 200
        if record.bytes == 0 { record.bytes = announced }
        guard request.method == .GET else {
            let headers: HTTPHeaders = [.contentLength: String(announced)]
            return HTTPResponse(statusCode: .ok, headers: headers)
        }
        return HTTPResponse(
            statusCode: .ok,
            body: HTTPBodySequence(from: paced, count: announced, suggestedBufferSize: 4096)
        )
    }

    /// 4 KiB that parse as nothing: bytes from a xorshift generator seeded by the path (the same every time).
    static func garbage(seed: String) -> [UInt8] {
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        for b in seed.utf8 { x = (x ^ UInt64(b)) &* 0x100_0000_01B3 }
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        for _ in 0..<4096 {
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            out.append(UInt8(truncatingIfNeeded: x))
        }
        return out
    }

    static func phrase(_ code: Int) -> String {
        switch code {
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 500: return "Internal Server Error"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        default: return code < 500 ? "Client Error" : "Server Error"
        }
    }

    struct StallOver: Error {}
}
