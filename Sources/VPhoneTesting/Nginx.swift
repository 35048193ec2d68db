// A real nginx for integration tests: started non-root from its own temporary prefix, on 127.0.0.1
// and a free port, optionally with TLS from a test CA made by the real `openssl` command.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The system nginx serving a directory, for tests.
///
/// ```swift
/// let server = try NginxServer(root: dir, tls: true, extraConfig: "location /missing { return 404; }")
/// defer { server.stop() }
/// // server.baseURL == "http://127.0.0.1:PORT", server.tlsBaseURL == "https://127.0.0.1:TLSPORT"
/// // trust server.caCertPath to fetch over TLS
/// ```
///
/// Each server has its own prefix directory (config, pid, logs, temp files), removed when it is
/// deallocated. The access log has one line per request in this format:
///
///     $remote_addr $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_user_agent"
///     $connection $connection_requests
///
/// (on one line), e.g.
/// `127.0.0.1 - [27/Nov/2026:08:00:00 +0000] "GET /a.cfg HTTP/1.1" 200 45 "Panasonic_KX-UTG300/03.210 (0080f0c571eb)" 3 1`
/// `$connection` is the connection's serial number, so equal numbers mean a reused connection.
public final class NginxServer: @unchecked Sendable {
    // @unchecked: all stored properties are immutable except `process`, guarded by `lock`.

    /// The plain HTTP port on 127.0.0.1.
    public let port: Int
    /// The HTTPS port on 127.0.0.1 when started with `tls: true`.
    public let tlsPort: Int?
    /// The PEM certificate of the test CA that signed the server certificate (`tls: true` only).
    public let caCertPath: String?
    /// The server's private prefix directory (config, logs, certificates).
    public let directory: String
    public let accessLogPath: String
    public let errorLogPath: String

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    /// `https://127.0.0.1:TLSPORT`, without a trailing slash (`tls: true` only).
    public var tlsBaseURL: String? { tlsPort.map { "https://127.0.0.1:\($0)" } }

    private let lock = NSLock()
    private var process: Process?

    /// Starts nginx serving `root` and returns once its ports accept connections.
    ///
    /// - Parameters:
    ///   - root: the directory served at `/`.
    ///   - tls: also listen with TLS, with a certificate for `127.0.0.1` and `localhost` from a new test CA.
    ///   - extraConfig: inserted into the `server` block, e.g. `location /slow { limit_rate 100; }`.
    ///   - workers: nginx worker processes.
    /// - Throws: `NginxServer.Failure` if nginx or openssl is missing or nginx does not come up.
    public init(root: String, tls: Bool = false, extraConfig: String = "", workers: Int = 1) throws {
        guard
            let nginx = Self.findExecutable("nginx", extra: ["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"])
        else { throw Failure("nginx not found on PATH or in /usr/sbin: install nginx") }
        let directory = try Self.makeTemporaryDirectory()
        self.directory = directory
        accessLogPath = directory + "/access.log"
        errorLogPath = directory + "/error.log"
        for sub in ["tmp", "tmp/client_body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"] {
            try FileManager.default.createDirectory(atPath: directory + "/" + sub, withIntermediateDirectories: true)
        }
        // Each server gets its own CA with its own name, so two servers' roots never shadow each other.
        caCertPath = tls ? try Self.makeCertificates(in: directory) : nil

        var lastError = ""
        for _ in 0..<8 {
            let port = Self.freePort()
            var tlsPort: Int? = nil
            if tls {
                repeat { tlsPort = Self.freePort() } while tlsPort == port
            }
            let config = Self.config(
                directory: directory,
                root: root,
                port: port,
                tlsPort: tlsPort,
                extraConfig: extraConfig,
                workers: workers
            )
            try config.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: nginx)
            process.arguments = ["-p", directory + "/", "-c", directory + "/nginx.conf", "-e", errorLogPath]
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            _ = FileManager.default.createFile(atPath: directory + "/stderr.log", contents: nil)
            process.standardError = FileHandle(forWritingAtPath: directory + "/stderr.log")
            try process.run()
            if Self.waitForPorts([port] + (tlsPort.map { [$0] } ?? []), process: process, seconds: 10) {
                self.port = port
                self.tlsPort = tlsPort
                self.process = process
                return
            }
            Self.terminate(process)
            lastError = Self.readText(errorLogPath) + Self.readText(directory + "/stderr.log")
            guard lastError.contains("Address already in use") else { break }
            // Another process took the port between freePort() and nginx's bind: try other ports.
            try? FileManager.default.removeItem(atPath: errorLogPath)
        }
        try? FileManager.default.removeItem(atPath: directory)
        throw Failure("nginx did not start: \(lastError.trimmingCharacters(in: .whitespacesAndNewlines))")
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Stops nginx (SIGTERM, then SIGKILL after 3 s) and waits for it. Safe to call more than once.
    public func stop() {
        lock.lock()
        let process = self.process
        self.process = nil
        lock.unlock()
        if let process { Self.terminate(process) }
    }

    /// The access log, one request per line (see the type's notes for the format).
    ///
    /// nginx writes a line just after it has sent the response, so a client may see the response a
    /// moment before the line exists: use `accessLog(atLeast:timeoutSeconds:)` right after a request.
    public func accessLog() throws -> [String] {
        guard FileManager.default.fileExists(atPath: accessLogPath) else { return [] }
        let text = try String(contentsOfFile: accessLogPath, encoding: .utf8)
        return text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    /// Waits until the access log has at least `count` lines (or the time is up) and returns it.
    public func accessLog(atLeast count: Int, timeoutSeconds: Double = 5) throws -> [String] {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while true {
            let lines = try accessLog()
            if lines.count >= count || Date() >= deadline { return lines }
            usleep(5_000)
        }
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
    public static func freePort() -> Int {
        for _ in 0..<100 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var address = loopback(port: 0)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0 else { continue }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let named = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            guard named == 0 else { continue }
            return Int(UInt16(bigEndian: address.sin_port))
        }
        fatalError("no free TCP port on 127.0.0.1")
    }

    /// Could not start.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    // MARK: - Configuration

    private static func config(
        directory: String,
        root: String,
        port: Int,
        tlsPort: Int?,
        extraConfig: String,
        workers: Int
    ) -> String {
        // As root the workers would switch to "nobody", who cannot read private temp directories.
        let user = geteuid() == 0 ? "user root root;" : ""
        let tlsListen =
            tlsPort.map {
                """
                        listen 127.0.0.1:\($0) ssl;
                        ssl_certificate \(directory)/server.pem;
                        ssl_certificate_key \(directory)/server.key;
                """
            } ?? ""
        return """
            daemon off;
            master_process on;
            worker_processes \(max(1, workers));
            pid \(directory)/nginx.pid;
            error_log \(directory)/error.log warn;
            \(user)
            events { worker_connections 8192; }
            http {
                log_format vphone '$remote_addr $remote_user [$time_local] "$request" $status $body_bytes_sent '
                                  '"$http_user_agent" $connection $connection_requests';
                access_log \(directory)/access.log vphone;
                client_body_temp_path \(directory)/tmp/client_body;
                proxy_temp_path \(directory)/tmp/proxy;
                fastcgi_temp_path \(directory)/tmp/fastcgi;
                uwsgi_temp_path \(directory)/tmp/uwsgi;
                scgi_temp_path \(directory)/tmp/scgi;
                types {
                    text/xml xml;
                    text/plain txt cfg;
                    text/html html;
                    application/json json;
                }
                default_type application/octet-stream;
                sendfile on;
                keepalive_timeout 65;
                server {
                    listen 127.0.0.1:\(port);
            \(tlsListen)
                    server_name localhost;
                    root \(root);
            \(extraConfig)
                }
            }

            """
    }

    /// A test CA and a server certificate for 127.0.0.1 and localhost signed by it. Returns the CA's path.
    private static func makeCertificates(in directory: String) throws -> String {
        guard let openssl = findExecutable("openssl", extra: ["/usr/bin", "/usr/local/bin"]) else {
            throw Failure("openssl not found on PATH: install openssl")
        }
        let ext = """
            subjectAltName=IP:127.0.0.1,DNS:localhost
            basicConstraints=critical,CA:FALSE
            keyUsage=critical,digitalSignature,keyEncipherment
            extendedKeyUsage=serverAuth

            """
        try ext.write(toFile: directory + "/server.ext", atomically: true, encoding: .utf8)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try run(
            openssl,
            ["req", "-x509"] + ec + [
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "3",
                "-subj", "/CN=vphone test CA \(UInt64.random(in: 0...UInt64.max))",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ],
            in: directory
        )
        try run(
            openssl,
            ["req"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
            in: directory
        )
        try run(
            openssl,
            [
                "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "server.pem", "-days", "3", "-extfile", "server.ext",
            ],
            in: directory
        )
        return directory + "/ca.pem"
    }

    // MARK: - Processes

    private static func run(_ executable: String, _ arguments: [String], in directory: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(
                "\(executable) \(arguments.joined(separator: " ")) failed: "
                    + String(decoding: output, as: UTF8.self)
            )
        }
    }

    private static func terminate(_ process: Process) {
        guard process.isRunning else { return }
        process.terminate()  // SIGTERM: nginx's fast shutdown, which also stops the workers
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning && Date() < deadline { usleep(2_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    private static func waitForPorts(_ ports: [Int], process: Process, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var pending = ports
        while Date() < deadline {
            guard process.isRunning else { return false }
            pending.removeAll(where: accepts)
            if pending.isEmpty { return true }
            usleep(5_000)
        }
        return false
    }

    private static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }

    // MARK: - Files

    private static func findExecutable(_ name: String, extra: [String]) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":").map(String.init) + extra {
            let candidate = directory + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    private static func makeTemporaryDirectory() throws -> String {
        let base = NSTemporaryDirectory().hasSuffix("/") ? NSTemporaryDirectory() : NSTemporaryDirectory() + "/"
        var template = Array((base + "vphone-nginx-XXXXXX").utf8CString)
        let created = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let path = mkdtemp(buffer.baseAddress!) else { return nil }
            return String(cString: path)
        }
        guard let created else { throw Failure("cannot create a temporary directory in \(base)") }
        return created
    }

    private static func readText(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }
}
