// A real vsftpd for tests: ftp is the last scheme tried for a URL without one (spec §3), and the
// provisioning credentials are its login.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// vsftpd serving a directory on 127.0.0.1, for tests: to one user and password, or to anonymous.
///
/// ```swift
/// let server = try FTPServer(root: dir, user: "phone", password: "s3cret")
/// defer { server.stop() }
/// // fetch server.baseURL + "/KX-UTG300.cfg" with username "phone" and password "s3cret"
/// ```
///
/// Started in the foreground from a generated `vsftpd.conf` in its own directory (listen=YES on
/// 127.0.0.1:PORT, passive mode on a port the kernel picks, read-only, the session log with every
/// command in `logPath`). It is ready when it sends its `220` greeting. vsftpd needs root.
///
/// - With `user`/`password`: a virtual user. vsftpd checks passwords only through PAM, and PAM reads
///   its service files only from `/etc/pam.d`, so vsftpd runs in a private mount namespace
///   (`unshare --mount`) where the server's own directory is bind-mounted over `/etc/pam.d`, holding
///   one service: `pam_pwdfile` (package libpam-pwdfile) against a file with the password's SHA-512
///   crypt hash. The host's `/etc/pam.d` is never touched. The user is chrooted into `root` and reads
///   as root, so any file there can be downloaded. Anonymous logins are refused.
/// - Without: anonymous only (any password, or none), chrooted into `root` as vsftpd's `ftp` user, as a
///   real anonymous server: files must be readable by that user, and `root` must not be writable by
///   it (vsftpd refuses to start a session otherwise). Any other user name is refused.
public final class FTPServer: @unchecked Sendable {
    // @unchecked: all stored properties are immutable except `process`, guarded by `lock`.

    public typealias Failure = TestServerFailure

    /// The control port on 127.0.0.1.
    public let port: Int
    /// The served directory (absolute), `/` of every session.
    public let root: String
    /// The one user allowed in, or nil for anonymous only.
    public let user: String?
    /// The server's private directory (config, PAM service, password file, logs).
    public let directory: String
    /// vsftpd's log: connections, logins, every command and response (passwords masked).
    public let logPath: String

    /// `ftp://127.0.0.1:PORT`, without a trailing slash.
    public var baseURL: String { "ftp://127.0.0.1:\(port)" }

    private let lock = NSLock()
    private var process: DaemonProcess?

    /// Starts vsftpd serving `root` and returns once it greets clients.
    ///
    /// - Parameters:
    ///   - root: the directory served as `/`.
    ///   - user: the only login accepted (with `password`); nil for an anonymous server.
    /// - Throws: `TestServerFailure` if not root, if vsftpd, unshare or pam_pwdfile is missing, if the
    ///   credentials cannot be written to a password file, or if vsftpd does not come up within 10 s.
    public init(root: String, user: String? = nil, password: String? = nil) throws {
        guard geteuid() == 0 else {
            throw Failure("FTPServer needs root: vsftpd switches users, chroots and authenticates through PAM")
        }
        guard let vsftpd = Daemon.findExecutable("vsftpd", extra: ["/usr/sbin", "/usr/local/sbin"]) else {
            throw Failure("vsftpd not found on PATH or in /usr/sbin: install vsftpd")
        }
        let root = URL(fileURLWithPath: root).standardizedFileURL.path
        self.root = root
        self.user = user
        let directory = try Daemon.makeTemporaryDirectory("vphone-vsftpd")
        self.directory = directory
        logPath = Self.logPath(directory)
        let output = directory + "/stderr.log"

        do {
            // vsftpd's chroot for its unprivileged helper: empty, root-owned, not writable.
            try FileManager.default.createDirectory(atPath: directory + "/empty", withIntermediateDirectories: false)
            guard chmod(directory + "/empty", 0o555) == 0 else { throw Failure("cannot chmod \(directory)/empty") }
            var launcher: (executable: String, prefix: [String])? = nil
            if let user {
                launcher = try Self.prepareVirtualUser(user, password: password, in: directory)
            } else if password != nil {
                throw Failure("FTPServer: a password without a user; give both, or neither for anonymous")
            }

            var lastError = ""
            for _ in 0..<8 {
                let port = NginxServer.freePort()
                let config = Self.config(directory: directory, root: root, port: port, virtualUser: user != nil)
                try Daemon.write(config, to: directory + "/vsftpd.conf")
                let process: DaemonProcess
                if let launcher {
                    process = try DaemonProcess(
                        launcher.executable,
                        launcher.prefix + [vsftpd, directory + "/vsftpd.conf"],
                        output: output
                    )
                } else {
                    process = try DaemonProcess(vsftpd, [directory + "/vsftpd.conf"], output: output)
                }
                let ready = Daemon.waitUntil(seconds: 10, process: process) {
                    Daemon.greeting(port: port)?.hasPrefix("220") == true
                }
                if ready {
                    self.port = port
                    self.process = process
                    return
                }
                let exited = !process.isRunning
                let status = process.stop()
                lastError = Daemon.readText(output) + Daemon.readText(logPath) + " (exit status \(status))"
                // vsftpd exits at once, saying nothing, when another process took the port between
                // freePort() and its bind: try another port. Not answering in time is another matter.
                guard exited else { break }
            }
            throw Failure("vsftpd did not start: \(lastError.trimmingCharacters(in: .whitespacesAndNewlines))")
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Stops vsftpd and its sessions (SIGTERM, then SIGKILL after 10 s) and waits for it. Safe to call more
    /// than once.
    public func stop() {
        lock.lock()
        let process = self.process
        self.process = nil
        lock.unlock()
        process?.stop()
    }

    /// vsftpd's log, one line per event.
    public func log() -> [String] {
        Daemon.readText(logPath).split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    // MARK: - Virtual user

    /// Writes the password file and the PAM service, and returns how to start vsftpd with that service
    /// visible: `unshare` running a shell that bind-mounts the service directory over /etc/pam.d, then
    /// execs vsftpd (the same process, so stopping it stops vsftpd).
    private static func prepareVirtualUser(
        _ user: String,
        password: String?,
        in directory: String
    ) throws -> (executable: String, prefix: [String]) {
        guard let password else { throw Failure("FTPServer: user \(user) needs a password") }
        guard !user.isEmpty, !user.contains(where: { $0 == ":" || $0.isWhitespace || $0.isNewline }),
            !password.contains(where: \.isNewline)
        else {
            throw Failure("FTPServer: the user name must be non-empty without ':' or spaces, the password one line")
        }
        guard !directory.contains(where: \.isWhitespace) else {
            throw Failure("FTPServer: the temporary directory \(directory) has a space, which PAM arguments cannot")
        }
        guard pamModuleExists("pam_pwdfile.so") else {
            throw Failure("pam_pwdfile.so not found in the PAM module directories: install libpam-pwdfile")
        }
        guard let unshare = Daemon.findExecutable("unshare", extra: ["/usr/bin", "/bin"]),
            let mount = Daemon.findExecutable("mount", extra: ["/usr/bin", "/bin"])
        else { throw Failure("unshare or mount not found: install util-linux and mount") }
        guard let openssl = Daemon.findExecutable("openssl", extra: ["/usr/bin", "/usr/local/bin"]) else {
            throw Failure("openssl not found on PATH: install openssl")
        }

        let hash = try Daemon.run(openssl, ["passwd", "-6", "-stdin"], input: password + "\n", in: directory)
        try Daemon.write("\(user):\(hash)\n", to: directory + "/passwd")
        try FileManager.default.createDirectory(atPath: directory + "/pam.d", withIntermediateDirectories: false)
        try Daemon.write(
            """
            auth required pam_pwdfile.so pwdfile=\(directory)/passwd nodelay
            account required pam_permit.so

            """,
            to: directory + "/pam.d/vphone-ftp",
            mode: 0o644
        )
        // $0: mount, $1: the PAM directory, $2: vsftpd, $3: its config (appended by the caller).
        let script = "\"$0\" --bind \"$1\" /etc/pam.d && exec \"$2\" \"$3\""
        return (unshare, ["--mount", "--propagation", "private", "/bin/sh", "-c", script, mount, directory + "/pam.d"])
    }

    private static func pamModuleExists(_ name: String) -> Bool {
        var directories = ["/lib/security", "/usr/lib/security", "/lib64/security", "/usr/lib64/security"]
        for base in ["/lib", "/usr/lib"] {
            // Multiarch: /lib/x86_64-linux-gnu/security, /usr/lib/aarch64-linux-gnu/security, ...
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
            directories += entries.filter { $0.hasSuffix("-linux-gnu") }.map { "\(base)/\($0)/security" }
        }
        return directories.contains { FileManager.default.fileExists(atPath: "\($0)/\(name)") }
    }

    // MARK: - Configuration

    private static func config(directory: String, root: String, port: Int, virtualUser: Bool) -> String {
        let users =
            virtualUser
            ? """
            anonymous_enable=NO
            local_enable=YES
            guest_enable=YES
            guest_username=root
            local_root=\(root)
            chroot_local_user=YES
            allow_writeable_chroot=YES
            pam_service_name=vphone-ftp
            """
            : """
            anonymous_enable=YES
            no_anon_password=YES
            anon_root=\(root)
            ftp_username=ftp
            local_enable=NO
            """
        return """
            listen=YES
            listen_ipv6=NO
            listen_address=127.0.0.1
            listen_port=\(port)
            background=NO
            \(users)
            write_enable=NO
            anon_world_readable_only=NO
            pasv_enable=YES
            pasv_min_port=0
            pasv_max_port=0
            port_enable=YES
            connect_from_port_20=NO
            secure_chroot_dir=\(directory)/empty
            delay_failed_login=0
            delay_successful_login=0
            dirmessage_enable=NO
            seccomp_sandbox=NO
            syslog_enable=NO
            xferlog_enable=YES
            xferlog_std_format=NO
            vsftpd_log_file=\(logPath(directory))
            log_ftp_protocol=YES
            use_localtime=NO

            """
    }

    private static func logPath(_ directory: String) -> String { directory + "/vsftpd.log" }
}
