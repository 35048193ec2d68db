// A real Apache httpd for tests: HTTP Digest and Basic authentication as provisioning servers use
// them (spec §3: USR_PROV_SVR_AUTH_ID / _PASSWORD, or user:password@ in the URL), and an
// authenticating forward proxy.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Apache httpd serving one directory three times on 127.0.0.1: openly, behind Digest and behind Basic.
///
/// ```swift
/// let server = try ApacheServer(root: dir, digestUser: "phone", digestPassword: "s3cret", realm: "prov")
/// defer { server.stop() }
/// // server.baseURL + "/a.cfg"          no login
/// // server.digestBaseURL + "/a.cfg"    Digest (MD5), user "phone", password "s3cret", realm "prov"
/// // server.basicBaseURL + "/a.cfg"     Basic, the same user and password
/// ```
///
/// Started as `apache2 -f DIR/httpd.conf -DFOREGROUND` from a minimal generated config in its own
/// directory (event MPM, modules loaded from Debian's `/usr/lib/apache2/modules`, Listen
/// 127.0.0.1:PORT, PidFile, logs and runtime files in that directory). The Digest password file is
/// `user:realm:md5(user:realm:password)` (what `htdigest` writes), the Basic one an APR1 hash, both
/// made with the `openssl` command. Ready when its port accepts connections.
///
/// Apache refuses to serve as root, so when started as root its children run as `www-data`: `root` and
/// the files in it must be readable by that user (the default 0755/0644 modes are).
///
/// With `forwardProxy: true` it is also an HTTP forward proxy (`ProxyRequests On`) that demands Basic
/// proxy credentials (the same user and password, HTTP 407 otherwise): use `proxyAddress` as
/// `FetchRequest.proxy`.
///
/// The access log (`accessLogPath`) has one line per request:
/// `$remote_addr $remote_user [$time] "$request" $status $body_bytes "$user_agent"`.
public final class ApacheServer: @unchecked Sendable {
    // @unchecked: all stored properties are immutable except `process`, guarded by `lock`.

    public typealias Failure = TestServerFailure

    /// The port on 127.0.0.1.
    public let port: Int
    /// The served directory (absolute).
    public let root: String
    /// The realm of the Digest and Basic locations.
    public let realm: String
    /// The server's private directory (config, password files, logs, pid).
    public let directory: String
    public let accessLogPath: String
    public let errorLogPath: String

    /// `http://127.0.0.1:PORT`, without a trailing slash: `root` without a login.
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    /// `baseURL + "/digest"`: `root` behind Digest authentication.
    public var digestBaseURL: String { baseURL + "/digest" }
    /// `baseURL + "/basic"`: `root` behind Basic authentication.
    public var basicBaseURL: String { baseURL + "/basic" }
    /// `127.0.0.1:PORT`, for `FetchRequest.proxy` (with `forwardProxy: true`).
    public var proxyAddress: String { "127.0.0.1:\(port)" }

    private let lock = NSLock()
    private var process: DaemonProcess?

    /// Starts Apache serving `root` and returns once its port accepts connections.
    ///
    /// - Parameters:
    ///   - root: the directory served at `/`, `/digest/` and `/basic/`.
    ///   - digestUser, digestPassword: the one login of the Digest and Basic locations (and the proxy).
    ///   - realm: the authentication realm (the Digest hash depends on it).
    ///   - forwardProxy: also act as a forward proxy demanding Basic proxy credentials.
    /// - Throws: `TestServerFailure` if apache2, its modules or openssl are missing, the names contain
    ///   `:`, `"` or line breaks, or Apache does not come up within 10 s.
    public init(
        root: String,
        digestUser: String,
        digestPassword: String,
        realm: String = "vphone provisioning",
        forwardProxy: Bool = false
    ) throws {
        guard
            let apache = Daemon.findExecutable("apache2", extra: ["/usr/sbin", "/usr/local/sbin"])
                ?? Daemon.findExecutable("httpd", extra: ["/usr/sbin", "/usr/local/sbin"])
        else { throw Failure("apache2 not found on PATH or in /usr/sbin: install apache2") }
        let modules = ["/usr/lib/apache2/modules", "/usr/lib64/httpd/modules", "/usr/lib/httpd/modules"].first {
            FileManager.default.fileExists(atPath: $0 + "/mod_mpm_event.so")
        }
        guard let modules else { throw Failure("Apache's mod_mpm_event.so not found: install apache2") }
        guard let openssl = Daemon.findExecutable("openssl", extra: ["/usr/bin", "/usr/local/bin"]) else {
            throw Failure("openssl not found on PATH: install openssl")
        }
        let unsafe: (Character) -> Bool = { $0 == ":" || $0 == "\"" || $0.isNewline }
        guard !digestUser.isEmpty, !digestUser.contains(where: unsafe), !realm.contains(where: unsafe),
            !digestPassword.contains(where: \.isNewline)
        else {
            throw Failure("ApacheServer: the user and realm must not contain ':', '\"' or line breaks")
        }

        let root = URL(fileURLWithPath: root).standardizedFileURL.path
        self.root = root
        self.realm = realm
        // Readable by the children (www-data): they read the password files on every request.
        let directory = try Daemon.makeTemporaryDirectory("vphone-apache", mode: 0o755)
        self.directory = directory
        accessLogPath = directory + "/access.log"
        errorLogPath = directory + "/error.log"
        let output = directory + "/stderr.log"

        do {
            let digest = try Daemon.run(
                openssl,
                ["dgst", "-md5", "-r"],
                input: "\(digestUser):\(realm):\(digestPassword)",
                in: directory
            )
            let ha1 = digest.prefix(while: { !$0.isWhitespace })
            try Daemon.write("\(digestUser):\(realm):\(ha1)\n", to: directory + "/htdigest", mode: 0o644)
            let apr1 = try Daemon.run(
                openssl,
                ["passwd", "-apr1", "-stdin"],
                input: digestPassword + "\n",
                in: directory
            )
            try Daemon.write("\(digestUser):\(apr1)\n", to: directory + "/htpasswd", mode: 0o644)

            var lastError = ""
            for _ in 0..<8 {
                let port = NginxServer.freePort()
                let config = Self.config(
                    directory: directory,
                    root: root,
                    modules: modules,
                    port: port,
                    realm: realm,
                    forwardProxy: forwardProxy
                )
                try Daemon.write(config, to: directory + "/httpd.conf", mode: 0o644)
                let process = try DaemonProcess(
                    apache,
                    ["-d", directory, "-f", directory + "/httpd.conf", "-DFOREGROUND"],
                    output: output
                )
                if Daemon.waitUntil(seconds: 10, process: process, { Daemon.accepts(port: port) }) {
                    self.port = port
                    self.process = process
                    return
                }
                let exited = !process.isRunning
                let status = process.stop()
                lastError = Daemon.readText(errorLogPath) + Daemon.readText(output) + " (exit status \(status))"
                // Another process took the port between freePort() and Apache's bind ("Address already in
                // use"): try another port.
                guard exited, lastError.contains("Address already in use") else { break }
                try? FileManager.default.removeItem(atPath: errorLogPath)
            }
            throw Failure("apache2 did not start: \(lastError.trimmingCharacters(in: .whitespacesAndNewlines))")
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Stops Apache and its children (SIGTERM, then SIGKILL after 10 s) and waits. Safe to call more than once.
    public func stop() {
        lock.lock()
        let process = self.process
        self.process = nil
        lock.unlock()
        process?.stop()
    }

    /// The access log once it has at least `count` lines (or after `timeoutSeconds`): Apache writes a
    /// line just after the response, so a client may see the response a moment before.
    public func accessLog(atLeast count: Int = 0, timeoutSeconds: Double = 5) -> [String] {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while true {
            let lines = Daemon.readText(accessLogPath).split(separator: "\n").map(String.init)
            if lines.count >= count || Date() >= deadline { return lines }
            usleep(5_000)
        }
    }

    // MARK: - Configuration

    private static func config(
        directory: String,
        root: String,
        modules: String,
        port: Int,
        realm: String,
        forwardProxy: Bool
    ) -> String {
        // Apache will not serve as root; as anyone else it cannot switch users and needs no directive.
        var user = ""
        if geteuid() == 0, let account = getpwnam("www-data") ?? getpwnam("nobody") {
            user = "User #\(account.pointee.pw_uid)\nGroup #\(account.pointee.pw_gid)"
        }
        let proxy =
            forwardProxy
            ? """
            LoadModule proxy_module \(modules)/mod_proxy.so
            LoadModule proxy_http_module \(modules)/mod_proxy_http.so
            ProxyRequests On
            ProxyVia Off
            <Proxy "*">
                AuthType Basic
                AuthName "\(realm) proxy"
                AuthBasicProvider file
                AuthUserFile "\(directory)/htpasswd"
                Require valid-user
            </Proxy>
            """
            : ""
        return """
            ServerRoot "\(directory)"
            ServerName 127.0.0.1
            Listen 127.0.0.1:\(port)
            PidFile "\(directory)/httpd.pid"
            DefaultRuntimeDir "\(directory)"
            ErrorLog "\(directory)/error.log"
            LogLevel warn
            LoadModule mpm_event_module \(modules)/mod_mpm_event.so
            LoadModule authn_core_module \(modules)/mod_authn_core.so
            LoadModule authn_file_module \(modules)/mod_authn_file.so
            LoadModule authz_core_module \(modules)/mod_authz_core.so
            LoadModule authz_user_module \(modules)/mod_authz_user.so
            LoadModule auth_basic_module \(modules)/mod_auth_basic.so
            LoadModule auth_digest_module \(modules)/mod_auth_digest.so
            LoadModule alias_module \(modules)/mod_alias.so
            LoadModule mime_module \(modules)/mod_mime.so
            \(user)
            StartServers 1
            ServerLimit 2
            ThreadsPerChild 16
            MaxRequestWorkers 32
            MinSpareThreads 8
            MaxSpareThreads 32
            LogFormat "%h %u %t \\"%r\\" %>s %B \\"%{User-Agent}i\\"" vphone
            CustomLog "\(directory)/access.log" vphone
            TypesConfig /dev/null
            AddType text/plain .cfg .txt
            AddType text/xml .xml
            DocumentRoot "\(root)"
            <Directory />
                AllowOverride None
                Require all denied
            </Directory>
            <Directory "\(root)">
                Require all granted
            </Directory>
            Alias /digest "\(root)"
            Alias /basic "\(root)"
            <Location /digest>
                AuthType Digest
                AuthName "\(realm)"
                AuthDigestProvider file
                AuthUserFile "\(directory)/htdigest"
                Require valid-user
            </Location>
            <Location /basic>
                AuthType Basic
                AuthName "\(realm)"
                AuthBasicProvider file
                AuthUserFile "\(directory)/htpasswd"
                Require valid-user
            </Location>
            \(proxy)

            """
    }
}
