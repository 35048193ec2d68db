import ControlAPI
import Flash
import Foundation
import Logging
import PhoneCore
import PhoneRuntime
import Testing
import Transport
import VPhoneTesting

let testMAC = "0080F0C571EB"

/// `examples/prov` served by a real nginx on 127.0.0.1: a copy with its `http://127.0.0.1:8780` rewritten to the
/// server's own port (the same tree the integration tests and docker-compose.yml serve).
final class ProvTree: @unchecked Sendable {
    let root: String
    let nginx: NginxServer

    init() throws {
        root = try temporaryDirectory("vphone-api-prov")
        nginx = try NginxServer(root: root)
        let examples = TestProfiles.repositoryRoot + "/examples/prov"
        for name in try FileManager.default.contentsOfDirectory(atPath: examples) {
            let text = try String(contentsOfFile: examples + "/" + name, encoding: .utf8)
            try text.replacingOccurrences(of: "http://127.0.0.1:8780", with: nginx.baseURL)
                .write(toFile: root + "/" + name, atomically: true, encoding: .utf8)
        }
    }

    deinit {
        nginx.stop()
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Requests nginx has logged so far.
    func requestCount() throws -> Int { try nginx.accessLog().count }
}

/// One phone booted by a `PhoneRuntime` (as `vphone boot` does), its timers running, flash in a temporary directory.
final class BootedPhone: @unchecked Sendable {
    let directory: String
    let runtime: PhoneRuntime
    private let transport: CurlTransport
    private let loop: Task<Void, Never>

    private init(directory: String, runtime: PhoneRuntime, transport: CurlTransport, loop: Task<Void, Never>) {
        self.directory = directory
        self.runtime = runtime
        self.transport = transport
        self.loop = loop
    }

    /// Powers on a factory-fresh phone; returns when the boot-time cycle has finished, with its report.
    static func boot(mac: String = testMAC, provURL: String) async throws -> (BootedPhone, CycleReport?) {
        let directory = try temporaryDirectory("vphone-api-phone")
        let profile = TestProfiles.utg300
        let clock = ScaledClock()
        let store = try FlashStore.factoryFresh(
            at: directory + "/\(mac).flash",
            mac: mac,
            profile: profile,
            now: clock.now()
        )
        let machine = PhoneMachine(
            profile: PreparedProfile(profile),
            flash: try store.load(),
            discovery: DiscoveryOptions(provisioningURL: provURL)
        )
        let transport = try CurlTransport()
        let runtime = PhoneRuntime(
            machine: machine,
            store: store,
            transport: transport,
            clock: clock,
            logger: quietLogger
        )
        let report = await runtime.powerOn()
        let loop = Task { await runtime.run() }
        return (BootedPhone(directory: directory, runtime: runtime, transport: transport, loop: loop), report)
    }

    /// Stops the phone and its transport, and removes its flash.
    func stop() async {
        loop.cancel()
        await runtime.shutdown()
        await loop.value
        transport.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A phone booted against `ProvTree` with its control API on a free port of 127.0.0.1.
final class PhoneUnderTest: @unchecked Sendable {
    let prov: ProvTree
    let phone: BootedPhone
    let api: ControlServer

    var runtime: PhoneRuntime { phone.runtime }
    var base: String { "http://127.0.0.1:\(api.port)" }

    private init(prov: ProvTree, phone: BootedPhone, api: ControlServer) {
        self.prov = prov
        self.phone = phone
        self.api = api
    }

    /// Boots a factory-fresh phone (the boot-time cycle has finished when this returns) and starts its API.
    static func start(auth: ControlAuth = .none) async throws -> PhoneUnderTest {
        let prov = try ProvTree()
        let (phone, _) = try await BootedPhone.boot(provURL: prov.nginx.baseURL + "/")
        do {
            let api = try await ControlServer.start(runtime: phone.runtime, port: 0, auth: auth, logger: quietLogger)
            return PhoneUnderTest(prov: prov, phone: phone, api: api)
        } catch {
            await phone.stop()
            throw error
        }
    }

    /// Stops the API, then the phone.
    func stop() async {
        await api.stop()
        await phone.stop()
    }
}

// MARK: - A client

/// One HTTP exchange as a client saw it.
struct Reply: Sendable {
    var status: Int
    var headers: [String: String]
    var body: Data

    var text: String { String(decoding: body, as: UTF8.self) }

    /// The body as a JSON object (empty when it is not one).
    var object: [String: Any] {
        (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:]
    }

    /// The body as a JSON array (empty when it is not one).
    var array: [[String: Any]] {
        (try? JSONSerialization.jsonObject(with: body)) as? [[String: Any]] ?? []
    }

    func header(_ name: String) -> String? {
        headers.first { $0.key.lowercased() == name.lowercased() }?.value
    }
}

/// A real HTTP request over a socket, made by the `curl` command (libcurl): a client that shares no code with the
/// server. (URLSession on Linux never returned from the 401s carrying `WWW-Authenticate` here, and refuses IPv6 literals.)
func http(
    _ method: String,
    _ url: String,
    body: String? = nil,
    contentType: String = "application/json",
    user: String? = nil,
    password: String? = nil
) async throws -> Reply {
    guard let curl = findExecutable("curl") else { throw TestError("curl is not installed: apt-get install curl") }
    let dir = try temporaryDirectory("vphone-api-http")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var args = [
        "--silent", "--show-error", "--globoff", "--max-time", "60", "--request", method,
        "--dump-header", dir + "/headers", "--output", dir + "/body", "--write-out", "%{http_code}",
    ]
    if let body {
        try body.write(toFile: dir + "/request", atomically: true, encoding: .utf8)
        args += ["--data-binary", "@" + dir + "/request", "--header", "Content-Type: \(contentType)"]
    }
    if let user, let password {
        // curl's --user would do the same; an explicit header keeps the password off curl's command line.
        let token = Data("\(user):\(password)".utf8).base64EncodedString()
        try "Authorization: Basic \(token)\n".write(toFile: dir + "/auth", atomically: true, encoding: .utf8)
        args += ["--header", "@" + dir + "/auth"]
    }
    let r = try await runAsync(curl, args + [url])
    guard r.code == 0, let status = Int(r.stdout) else { throw TestError("curl \(method) \(url) failed: \(r.stderr)") }
    var headers: [String: String] = [:]
    let head = (try? String(contentsOfFile: dir + "/headers", encoding: .utf8)) ?? ""
    for line in head.split(whereSeparator: \.isNewline).dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    let data = FileManager.default.contents(atPath: dir + "/body") ?? Data()
    return Reply(status: status, headers: headers, body: data)
}

struct TestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func temporaryDirectory(_ prefix: String) throws -> String {
    let path = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// An executable on PATH (or in the extra directories), or nil.
func findExecutable(_ name: String, extra: [String] = ["/usr/bin", "/usr/local/bin", "/usr/sbin"]) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    for dir in path.split(separator: ":").map(String.init) + extra {
        let candidate = dir + "/" + name
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// The result of a child process.
struct ProcessResult {
    var code: Int32
    var stdout: String
    var stderr: String
}

/// `run` on a plain thread: the server under test lives in this process, on Swift concurrency's few threads, and
/// must not wait for a client that waits for it.
func runAsync(_ executable: String, _ args: [String], environment: [String: String] = [:]) async throws -> ProcessResult
{
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try run(executable, args, environment: environment) })
        }
    }
}

/// Runs `executable args...` to the end, with `environment` added to this process's.
func run(
    _ executable: String,
    _ args: [String],
    environment: [String: String] = [:],
    cwd: String? = nil,
    replaceEnvironment: Bool = false
) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    var env = replaceEnvironment ? [:] : ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let dir = try temporaryDirectory("vphone-api-run")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    _ = FileManager.default.createFile(atPath: dir + "/out", contents: nil)
    _ = FileManager.default.createFile(atPath: dir + "/err", contents: nil)
    p.standardOutput = FileHandle(forWritingAtPath: dir + "/out")
    p.standardError = FileHandle(forWritingAtPath: dir + "/err")
    p.standardInput = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    return ProcessResult(
        code: p.terminationStatus,
        stdout: (try? String(contentsOfFile: dir + "/out", encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: dir + "/err", encoding: .utf8)) ?? ""
    )
}

/// Runs `body` with a booted phone and its API, and always stops both (nginx included) afterwards.
func withPhone(auth: ControlAuth = .none, _ body: (PhoneUnderTest) async throws -> Void) async throws {
    let phone = try await PhoneUnderTest.start(auth: auth)
    do {
        try await body(phone)
    } catch {
        await phone.stop()
        throw error
    }
    await phone.stop()
}

/// A logger that prints nothing below critical (FlyingFox and the phone are chatty at info).
let quietLogger: Logger = {
    var logger = Logger(label: "vphone-test")
    logger.logLevel = .critical
    return logger
}()
